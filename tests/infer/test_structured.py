"""Structured output: JSON schemas and GBNF grammars, per session inside the batched loop."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from .conftest import Cluster
from .test_service import worker_health as health_of

SCHEMAS: list[tuple[str, dict[str, Any]]] = [
    (
        "Describe a T-shirt for sale.",
        {
            "type": "object",
            "properties": {
                "colour": {"enum": ["red", "green", "blue"]},
                "size": {"enum": ["S", "M", "L", "XL"]},
            },
            "required": ["colour", "size"],
        },
    ),
    (
        "Invent a character for a story.",
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 12},
                "skills": {
                    "type": "array",
                    "items": {"enum": ["sword", "magic", "bow"]},
                    "maxItems": 3,
                },
            },
            "required": ["name", "skills"],
        },
    ),
    (
        "Is the sky green? Answer with a reason.",
        {
            "type": "object",
            "properties": {
                "answer": {"type": "boolean"},
                "reason": {"type": "string", "maxLength": 30},
            },
            "required": ["answer", "reason"],
        },
    ),
    (
        "List some fruits.",
        {
            "type": "array",
            "items": {"type": "string", "maxLength": 10},
            "minItems": 1,
            "maxItems": 3,
        },
    ),
]


@pytest.fixture
def served(cluster: Any, smollm2: Path) -> Cluster:
    c: Cluster = cluster(model=smollm2)
    c.add_worker("w1", "--slots", "10", ctx=512, threads=2)
    return c


def api(c: Cluster) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{c.url}/v1", api_key="unused", max_retries=0, timeout=300)


class Timed:
    """One request's outcome and when its first and last pieces came."""

    def __init__(self) -> None:
        self.first = 0.0
        self.end = 0.0
        self.text = ""
        self.finish = ""
        self.tokens = 0


def coordinator_stream(url: str, payload: dict[str, Any]) -> Timed:
    """POST /coordinator/infer and read it to the end (patient: ten sessions share 2 cores)."""
    timed = Timed()
    with httpx.stream("POST", f"{url}/coordinator/infer", json=payload, timeout=300) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[6:])
            if event["finished"]:
                assert "error" not in event, event
                break
            timed.first = timed.first or time.monotonic()
            timed.text += event["token"]
            timed.tokens += 1
    timed.end = time.monotonic()
    return timed


def openai_schema(c: Cluster, prompt: str, schema: dict[str, Any]) -> Timed:
    timed = Timed()
    done = api(c).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=200,
        temperature=0.7,
        seed=4,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    timed.end = time.monotonic()
    timed.text = done.choices[0].message.content or ""
    timed.finish = done.choices[0].finish_reason
    return timed


def test_concurrent_schema_requests_all_validate_beside_unconstrained_streams(
    served: Cluster,
) -> None:
    free = {"prompt": "Tell me a story.", "model": "m", "max_tokens": 48, "temperature": 0.7,
            "ignore_eos": True}  # fmt: skip
    with ThreadPoolExecutor(10) as pool:
        unconstrained = [pool.submit(coordinator_stream, served.url, free) for _ in range(2)]
        constrained = []
        for round_ in range(2):  # each schema through both APIs
            for prompt, schema in SCHEMAS:
                if round_ == 0:
                    constrained.append((schema, pool.submit(openai_schema, served, prompt, schema)))
                else:
                    payload = {"prompt": prompt, "model": "m", "max_tokens": 200,
                               "temperature": 0.7, "seed": 5, "json_schema": schema}  # fmt: skip
                    constrained.append(
                        (schema, pool.submit(coordinator_stream, served.url, payload))
                    )
        results = [(schema, future.result()) for schema, future in constrained]
        free_results = [future.result() for future in unconstrained]
    for schema, result in results:
        jsonschema.validate(json.loads(result.text), schema)
        assert result.finish in ("stop", "")  # "": streamed, ended by its last event
    assert all(r.tokens == 48 for r in free_results)
    # the unconstrained streams ran beside the constrained ones, not before or after them
    assert max(r.first for r in free_results) < max(r.end for _, r in results)
    health = health_of(served, "w1")
    assert (health["completed"], health["failed"]) == (10, 0)


def test_a_streamed_schema_request_ends_with_stop(served: Cluster) -> None:
    prompt, schema = SCHEMAS[0]
    chunks = api(served).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": prompt}],
        max_tokens=100,
        temperature=0,
        stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    pieces = list(chunks)
    text = "".join(c.choices[0].delta.content or "" for c in pieces if c.choices)
    jsonschema.validate(json.loads(text), schema)
    assert pieces[-1].choices[0].finish_reason == "stop"


def test_greedy_schema_output_is_llama_cpp_pythons_own(cluster: Any, smollm2: Path) -> None:
    # bit-for-bit with llama-cpp-python: without the prefix cache, whose copied prompt
    # prefix (the chat template's, shared by every prompt here) moves the logits' last bits
    served: Cluster = cluster(model=smollm2)
    served.add_worker("w1", "--no-prefix-cache", ctx=512, threads=2)
    from llama_cpp import Llama

    llama = Llama(str(smollm2), n_ctx=512, n_batch=512, n_threads=2, n_threads_batch=2,
                  flash_attn=True, verbose=False)  # fmt: skip
    try:
        for prompt, schema in SCHEMAS[:3]:
            messages: Any = [{"role": "user", "content": prompt}]
            direct: Any = llama.create_chat_completion(
                messages,
                max_tokens=100,
                temperature=0,
                response_format={"type": "json_object", "schema": schema},
            )
            payload = {"prompt": prompt, "model": "m", "max_tokens": 100, "temperature": 0,
                       "json_schema": schema}  # fmt: skip
            served_text = coordinator_stream(served.url, payload).text
            assert served_text == direct["choices"][0]["message"]["content"]
    finally:
        llama.close()


def test_json_object_completions_and_a_gbnf_grammar(served: Cluster) -> None:
    done = api(served).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Give the name and age of a person as JSON."}],
        max_tokens=120,
        temperature=0,
        response_format={"type": "json_object"},
    )
    assert done.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(done.choices[0].message.content or ""), dict)

    schema = SCHEMAS[3][1]
    raw = api(served).completions.create(
        model="m",
        prompt="Three fruits as a JSON list:",
        max_tokens=60,
        temperature=0,
        extra_body={"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}},
    )
    assert raw.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(raw.choices[0].text), schema)

    grammar = 'root ::= ("yes" | "no") "."'
    payload = {"prompt": "Is water wet?", "model": "m", "max_tokens": 20, "grammar": grammar}
    answer = coordinator_stream(served.url, payload)
    assert answer.text in ("yes.", "no.")


def test_a_schema_or_grammar_that_cannot_be_used_gets_400_before_any_token(
    served: Cluster,
) -> None:
    endpoint = f"{served.url}/coordinator/infer"
    base = {"prompt": "hi", "model": "m", "max_tokens": 8}
    cases = [
        ({"json_schema": {"type": "string", "pattern": "abc"}}, 'Pattern must start with "^"'),
        ({"json_schema": {"$ref": "https://example.com/s.json"}}, "remote schemas"),
        ({"json_schema": {"type": "strnig"}}, "Unrecognized schema"),
        ({"grammar": 'root ::= "unterminated'}, "cannot parse the grammar"),
        ({"grammar": 'answer ::= "yes"'}, "'root' rule"),
        ({"json_schema": "not a schema"}, "must be a JSON schema"),
        ({"json_schema": {}, "grammar": "root ::= x"}, "give one of"),
        ({"json_schema": {"type": "object"}, "ignore_eos": True}, "ignore_eos"),
    ]
    for extra, message in cases:
        response = httpx.post(endpoint, json={**base, **extra}, timeout=30)
        assert response.status_code == 400, extra
        assert message in response.json()["error"], (extra, response.json())
    with pytest.raises(openai.BadRequestError, match="cannot turn the JSON schema"):
        api(served).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "a"}},
            },
        )
    health = health_of(served, "w1")
    assert (health["completed"], health["failed"], health["cancelled"]) == (0, 0, 0)
    listed = httpx.get(f"{served.url}/coordinator/health/workers", timeout=5).json()
    assert listed[0]["breaker"] == "closed"
