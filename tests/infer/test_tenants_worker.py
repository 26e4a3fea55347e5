"""The worker's side of tenants (issue 26) through its HTTP API: the headers a coordinator
sends, and prefix-cache groups that keep one group's cached KV from another's, on SmolLM2."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Proc
from .test_prefix_cache import SYSTEM


@pytest.fixture(scope="module")
def worker(smollm2: Path) -> Iterator[str]:
    proc = Proc(
        ["worker", "--port", "0", "--model", str(smollm2), "--ctx", "1024", "--threads", "2"]
    )
    try:
        yield proc.url
    finally:
        proc.stop()


def generate(url: str, headers: dict[str, str]) -> httpx.Response:
    body = {"prompt": SYSTEM * 6, "raw": True, "max_tokens": 2, "temperature": 0}
    return httpx.post(f"{url}/worker/generate", json=body, headers=headers, timeout=60)


def reused_tokens(url: str) -> int:
    return int(httpx.get(f"{url}/worker/health", timeout=10).json()["prefix_cache_reused_tokens"])


def test_a_prompt_reuses_cached_kv_of_its_own_cache_group_only(worker: str) -> None:
    reused = [reused_tokens(worker)]
    for group in ("a", "a", "b", "b", None):
        headers = {"x-ishan-tenant": f"t-{group}"}
        if group is not None:
            headers["x-ishan-cache-group"] = group
        response = generate(worker, headers)
        assert response.status_code == 200
        done = json.loads(response.text.splitlines()[-1])
        reused.append(reused_tokens(worker))
    gained = [after - before for before, after in itertools.pairwise(reused)]
    every_token_but_the_last = done["prompt_tokens"] - 1  # its logits are needed
    assert every_token_but_the_last > 250
    assert gained[:2] == [0, every_token_but_the_last]  # "a" filled the cache, then reused it
    assert gained[2:4] == [0, every_token_but_the_last]  # "b" could not reuse "a"'s cells
    assert gained[4] == 0  # nor could a request without a group


@pytest.mark.parametrize("weight", ["0", "-1", "1e-320", "20000", "nan", "inf", "heavy", ""])
def test_a_weight_out_of_range_is_a_400(worker: str, weight: str) -> None:
    response = generate(worker, {"x-ishan-tenant": "t", "x-ishan-tenant-weight": weight})
    assert response.status_code == 400
    assert response.json()["error"] == (
        f"x-ishan-tenant-weight must be a number from 0.01 to 10000, got {weight!r}"
    )
