"""schemathesis against a real coordinator (and a real worker on the tiny GGUF), every check
on: each operation its spec describes gets generated bodies, valid and invalid, and each
answer must match the spec (status, content type, body) and never be a server error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig

from .conftest import Cluster

# Valid bodies the spec cannot tell from invalid ones get 400 (rules across fields, a
# max_tokens over the worker's context, a grammar llama.cpp refuses): accepted as valid.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "400", "401", "404", "409", "413"]
            }
        }
    }
)
MAX_EXAMPLES = 30  # per operation and mode: the whole run stays near a minute on 2 cores
# The model the real worker serves. A generated heartbeat that is valid registers a worker at
# a made-up URL; under another model name it would make a second model known whose only
# workers are unreachable, whose requests must then fail (502/503, by design and tested in
# test_models.py). So valid heartbeats name the real model: their workers join its pool
# and a request that tries one is retried on the real worker. They also report no load: a
# reported load counts toward the system-wide limits (every coordinator counts the sessions
# the others opened), so a dozen made-up full workers would rightly close the system (503).
MODEL = "tiny-random-llama"


@pytest.fixture(scope="module")
def coordinator(tiny_model: Path) -> Iterator[Cluster]:
    c = Cluster(tiny_model)
    try:
        c.add_worker("w1", ctx=512)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def api_schema(coordinator: Cluster) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{coordinator.url}/openapi.json", config=CONFIG)


def exercise(operation: Any, mode: schemathesis.GenerationMode) -> None:
    """Generated cases of one operation and mode, each answer checked against the spec."""
    pin_model = (
        mode is schemathesis.GenerationMode.POSITIVE and operation.path == "/coordinator/heartbeat"
    )

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        if pin_model and isinstance(case.body, dict):
            case.body.update(model=MODEL, sessions=0, kv_used_bytes=0)
        case.call_and_validate(timeout=60)

    check()


def test_the_coordinator_answers_as_its_spec_says(api_schema: schemathesis.BaseSchema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 9
    for operation in operations:
        modes = [schemathesis.GenerationMode.POSITIVE]
        if operation.method.lower() == "post":  # a body to get wrong
            modes.append(schemathesis.GenerationMode.NEGATIVE)
        for mode in modes:
            exercise(operation, mode)
