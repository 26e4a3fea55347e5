"""KV accounting by each session's real need (prompt plus max_tokens), worker and coordinator."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from llama_cpp import Llama

from ishan_tools.infer import EngineSettings, GenerationRequest, ModelSettings
from ishan_tools.infer.errors import EngineBusy
from ishan_tools.infer.worker.engine import Engine, model_shape

from .conftest import Cluster, wait_until, workers_of

CTX = 256


@pytest.fixture(scope="module")
def probe(tiny_model: Path) -> Iterator[Llama]:
    """The tiny model on its own: to count prompt tokens and KV bytes per token."""
    llama = Llama(str(tiny_model), n_ctx=CTX, n_threads=1, verbose=False)
    yield llama
    llama.close()


def need(llama: Llama, prompt: str, max_tokens: int, n_ctx: int) -> int:
    """What a session really needs: min(prompt tokens + max_tokens, n_ctx) KV cells."""
    tokens = len(llama.tokenize(prompt.encode(), add_bos=True, special=True))
    per_token = model_shape(llama, "probe").kv_bytes_per_token
    return min(tokens + max_tokens, n_ctx) * per_token


def engine(tiny_model: Path, **settings: Any) -> Engine:
    model = ModelSettings(tiny_model, n_ctx=CTX, n_threads=1)
    return Engine.load(EngineSettings(model, **settings))


def test_a_session_reserves_its_prompt_plus_max_tokens_not_a_full_context(
    tiny_model: Path, probe: Llama
) -> None:
    eng = engine(tiny_model)
    try:
        short = eng.submit(GenerationRequest(prompt="hello", raw=True, max_tokens=200))
        expected_short = need(probe, "hello", 200, CTX)
        assert eng.stats().kv_used_bytes == expected_short < eng.shape.session_kv_bytes
        capped = eng.submit(GenerationRequest(prompt="hello there", raw=True, max_tokens=10_000))
        assert eng.stats().kv_used_bytes == expected_short + eng.shape.session_kv_bytes
        eng.cancel(short)
        eng.cancel(capped)
        wait_until(lambda: eng.stats().sessions == 0)
        assert eng.stats().kv_used_bytes == 0
    finally:
        eng.close()


def test_the_worker_admits_by_real_need_against_its_kv_budget(
    tiny_model: Path, probe: Llama
) -> None:
    per_session = need(probe, "hello", 60, CTX)
    full = model_shape(probe, "probe").kv_bytes_per_token * CTX
    # Room for exactly one full context, which holds three of these smaller sessions.
    assert 3 * per_session <= full < 4 * per_session
    eng = engine(tiny_model, kv_capacity_bytes=full)
    try:
        request = GenerationRequest(prompt="hello", raw=True, max_tokens=60)
        sessions = [eng.submit(request) for _ in range(3)]
        with pytest.raises(EngineBusy, match="KV cache"):
            eng.submit(request)
        for session in sessions:
            eng.cancel(session)
        wait_until(lambda: eng.stats().sessions == 0)
        small = dataclasses.replace(request, max_tokens=4)
        assert list(eng.stream(small))  # the freed budget admits new sessions
        assert eng.stats().kv_used_bytes == 0
    finally:
        eng.close()


def counters(c: Cluster) -> tuple[int, int, int, int]:
    """Coordinator sessions and KV, its view of the worker's KV, the worker's own KV."""
    health = httpx.get(f"{c.url}/coordinator/health", timeout=5).json()
    [listed] = workers_of(c.url)
    worker = httpx.get(f"{listed['url']}/worker/health", timeout=5).json()
    return (
        health["sessions"],
        health["kv_used_bytes"],
        listed["kv_used_bytes"],
        worker["kv_used_bytes"],
    )


def test_the_coordinator_shows_the_real_figure_and_its_counters_return_to_zero(
    cluster: Any, probe: Llama
) -> None:
    c: Cluster = cluster()
    c.add_worker("w1", ctx=8192)
    payload = {
        "prompt": "hello world",
        "raw": True,  # as `need` tokenizes it
        "model": "tiny",
        "max_tokens": 6000,
        "temperature": 0,
    }
    lines: list[str] = []

    def read() -> None:  # keep reading, so the coordinator never drops us as a slow client
        with httpx.stream("POST", f"{c.url}/coordinator/infer", json=payload, timeout=60) as r:
            for line in r.iter_lines():
                lines.append(line)

    reader = threading.Thread(target=read)
    reader.start()
    wait_until(lambda: bool(lines))  # the first token has arrived: the session is running
    expected = need(probe, "hello world", 6000, 8192)
    assert counters(c) == (1, expected, expected, expected)
    assert expected < model_shape(probe, "probe").kv_bytes_per_token * 8192
    reader.join()
    assert [line for line in lines if line][-1] == 'data: {"token": "", "finished": true}'

    def complete(prompt: str, max_tokens: int) -> httpx.Response:
        payload = {"prompt": prompt, "model": "tiny", "max_tokens": max_tokens, "temperature": 0}
        return httpx.post(f"{c.url}/v1/completions", json=payload, timeout=60)

    asked = [("hi", 5), ("a longer prompt " * 20, 17), ("x", 40), ("hello " * 50, 90)]
    with ThreadPoolExecutor(len(asked)) as pool:
        responses = list(pool.map(lambda a: complete(*a), asked))
    for response, (_, max_tokens) in zip(responses, asked, strict=True):
        assert response.status_code == 200, response.text
        assert response.json()["usage"]["completion_tokens"] == max_tokens
    too_long = complete("hello " * 9000, 4)  # refused by the worker after tokenizing
    assert too_long.status_code == 400 and "context" in too_long.text
    wait_until(lambda: counters(c) == (0, 0, 0, 0))
