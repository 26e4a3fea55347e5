"""A bounded property test: generated GBNF grammars and JSON schemas sent to a real worker
(the tiny GGUF) never take it down: its pid stays the same, and each answer is a 200 or a 400
(a refusal that names the problem)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Proc

EXAMPLES = 30  # per property: together well under a minute


@pytest.fixture(scope="module")
def worker(tiny_model: Path) -> Iterator[str]:
    proc = Proc(["worker", "--port", "0", "--model", str(tiny_model), "--ctx", "512"])
    try:
        yield proc.url
    finally:
        proc.stop()


def pid(url: str) -> int:
    return int(httpx.get(f"{url}/worker/health", timeout=10).json()["pid"])


def generate(url: str, extra: dict[str, Any]) -> httpx.Response:
    body = {"prompt": "hi", "max_tokens": 4, "temperature": 0, **extra}
    return httpx.post(f"{url}/worker/generate", json=body, timeout=60)


CHARS = st.sampled_from(["a", "z", "0", "\\n", "\\x00", "\\u00e9", "-", "]", '"', "\\\\"])
bound = st.one_of(st.integers(0, 5), st.integers(0, 100_000))


@st.composite
def item(draw: st.DrawFn, rules: int) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return '"' + draw(st.text(alphabet="abc xyz{}", max_size=4)) + '"'
    if kind == 1:
        low, high = draw(CHARS), draw(CHARS)
        return f"[{draw(st.sampled_from(['', '^']))}{low}-{high}]"
    if kind == 2 and rules:
        return f"r{draw(st.integers(0, rules - 1))}"  # maybe recursive
    if kind == 2:
        return '""'
    if kind == 3:
        return "(" + draw(item(rules)) + ")" + draw(st.sampled_from(["*", "+", "?", ""]))
    if kind == 4:
        low = draw(bound)
        high = draw(st.one_of(st.just(""), bound.map(lambda n: str(low + n))))
        return f"{draw(item(rules))}{{{low},{high}}}"
    return draw(item(rules)) + " | " + draw(item(rules))


@st.composite
def grammars(draw: st.DrawFn) -> str:
    n = draw(st.integers(0, 3))
    lines = [f"root ::= {' '.join(draw(st.lists(item(n), min_size=1, max_size=3)))}"]
    for i in range(n):
        lines.append(f"r{i} ::= {' '.join(draw(st.lists(item(n), min_size=1, max_size=3)))}")
    if draw(st.integers(0, 9)) == 0:
        lines.append(draw(st.text(max_size=20)))  # noise
    return "\n".join(lines)


leaf_schemas = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("string")},
        optional={
            "maxLength": bound,
            "minLength": st.integers(0, 50),
            "pattern": st.sampled_from(["^a+$", "^[a-", "^(a|b){2,9999}$", "abc"]),
            "format": st.sampled_from(["date", "uuid", "email", "time"]),
        },
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["integer", "number", "boolean", "null", "strnig"])},
        optional={"minimum": st.integers(-(10**12), 10), "maximum": st.integers(-10, 10**12)},
    ),
    st.fixed_dictionaries({"enum": st.lists(st.one_of(st.text(max_size=5), st.integers()))}),
    st.fixed_dictionaries({"$ref": st.sampled_from(["#/$defs/x", "#", "https://x/s.json"])}),
)


def nested(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("array"), "items": children},
            optional={"minItems": st.integers(0, 30), "maxItems": bound},
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("object"),
                "properties": st.dictionaries(st.text(max_size=6), children, max_size=3),
            },
            optional={"required": st.lists(st.text(max_size=6), max_size=2)},
        ),
        st.fixed_dictionaries({"anyOf": st.lists(children, min_size=1, max_size=3)}),
    )


schemas = st.recursive(leaf_schemas, nested, max_leaves=6)


@given(grammar=grammars())
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_grammar_takes_the_worker_down(worker: str, grammar: str) -> None:
    before = pid(worker)
    response = generate(worker, {"grammar": grammar})
    assert response.status_code in (200, 400), (grammar, response.text)
    assert pid(worker) == before, grammar


@given(schema=schemas)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_json_schema_takes_the_worker_down(worker: str, schema: dict[str, Any]) -> None:
    before = pid(worker)
    response = generate(worker, {"json_schema": schema})
    assert response.status_code in (200, 400), (json.dumps(schema), response.text)
    assert pid(worker) == before, json.dumps(schema)
