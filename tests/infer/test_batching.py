"""Batched decoding: several sessions advance together, each with its own settings."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ishan_tools.cli import app
from ishan_tools.errors import InferenceError
from ishan_tools.infer import EngineSettings, GenerationRequest, ModelSettings
from ishan_tools.infer.events import Done, Event, Token
from ishan_tools.infer.worker.engine import Engine
from ishan_tools.infer.worker.session import Session

from .conftest import Cluster, wait_until


def engine_with(model: Path, slots: int, **extra: Any) -> Engine:
    return Engine.load(
        EngineSettings(ModelSettings(model, n_ctx=512, n_threads=2), slots=slots, **extra)
    )


def read_all(sessions: list[Session]) -> tuple[list[tuple[int, str]], list[list[Event]]]:
    """Read every session on its own thread: (session, kind) in arrival order, and events."""
    log: list[tuple[int, str]] = []
    events: list[list[Event]] = [[] for _ in sessions]
    lock = threading.Lock()

    def reader(index: int, session: Session) -> None:
        while True:
            event = session.channel.get(timeout=60)
            assert event is not None
            with lock:
                log.append((index, type(event).__name__))
            events[index].append(event)
            if not isinstance(event, Token):
                return

    threads = [threading.Thread(target=reader, args=pair) for pair in enumerate(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return log, events


def first(log: list[tuple[int, str]], kind: str, index: int | None = None) -> int:
    return next(i for i, (s, k) in enumerate(log) if k == kind and index in (None, s))


# SmolLM2 decodes slowly enough (tens of ms a step) that reader threads see events in the
# order the engine sends them.
def test_four_sessions_all_stream_before_any_finishes(smollm2: Path) -> None:
    engine = engine_with(smollm2, slots=4)
    try:
        request = GenerationRequest(prompt="Once upon a time", max_tokens=40, temperature=0.0)
        sessions = [engine.submit(request) for _ in range(4)]
        wait_until(lambda: engine.stats().kv_cached_bytes > 0)
        assert engine.stats().active == 4
        log, _ = read_all(sessions)
        first_done = first(log, "Done")
        assert all(first(log, "Token", i) < first_done for i in range(4))
        assert [k for _, k in log].count("Done") == 4
        stats = engine.stats()
        assert (stats.sessions, stats.kv_used_bytes, stats.completed) == (0, 0, 4)
        assert stats.kv_cached_bytes == stats.prefix_cache_bytes > 0  # kept as prefix cache
    finally:
        engine.close()


def test_one_slot_decodes_one_session_at_a_time(smollm2: Path) -> None:
    engine = engine_with(smollm2, slots=1)
    try:
        request = GenerationRequest(prompt="Once upon a time", max_tokens=16, temperature=0.0)
        sessions = [engine.submit(request) for _ in range(2)]
        stats = engine.stats()
        assert (stats.slots, stats.sessions) == (1, 2) and stats.active <= 1
        log, _ = read_all(sessions)
        assert first(log, "Done", 0) < first(log, "Token", 1)
    finally:
        engine.close()


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Token))


def test_each_session_keeps_its_own_sampling_and_stop(smollm2: Path) -> None:
    # Without the prefix cache, so that a rerun finds the KV cache laid out as the first run
    # did: llama.cpp's logits move in their last bits with that layout (see the docs'
    # internals/infer-engine.md).
    settings = EngineSettings(
        ModelSettings(smollm2, n_ctx=512, n_threads=2), slots=3, prefix_cache=False
    )
    engine = Engine.load(settings)
    try:
        prompt = "Once upon a time"
        seeded = GenerationRequest(prompt=prompt, max_tokens=24, temperature=1.0, seed=7)
        solo = text_of(list(engine.stream(seeded)))
        greedy = GenerationRequest(prompt=prompt, max_tokens=60, temperature=0.0)
        full = text_of(list(engine.stream(greedy)))
        stop_word = full.split()[3]
        stopping = GenerationRequest(
            prompt=prompt, max_tokens=60, temperature=0.0, stop=(stop_word,)
        )
        other = GenerationRequest(prompt=prompt, max_tokens=24, temperature=1.0, seed=8)
        assert text_of(list(engine.stream(seeded))) == solo  # same seed, same text
        assert text_of(list(engine.stream(other))) != solo  # another seed, another text
        sessions = [engine.submit(r) for r in (seeded, stopping, other)]
        _, (first_events, stop_events, other_events) = read_all(sessions)
        for events, reason, count in ((first_events, "length", 24), (other_events, "length", 24)):
            done = events[-1]
            assert isinstance(done, Done) and (done.finish_reason, done.completion_tokens) == (
                reason,
                count,
            )
        done = stop_events[-1]
        assert isinstance(done, Done) and done.finish_reason == "stop"
        stopped = text_of(stop_events)
        assert stop_word not in stopped and full.startswith(stopped) and stopped
    finally:
        engine.close()


def test_slots_beyond_the_kv_budget_or_the_batch_are_refused(tiny_model: Path) -> None:
    with pytest.raises(InferenceError, match="lower --slots"):
        engine_with(tiny_model, slots=50, kv_capacity_bytes=1024 * 1024)
    with pytest.raises(InferenceError, match="more than --batch 512"):
        engine_with(tiny_model, slots=513)


def test_slots_must_be_positive() -> None:
    result = CliRunner().invoke(app, ["infer", "worker", "--slots", "0"])
    assert result.exit_code == 2 and "--slots" in result.output


def stream_events(url: str, payload: dict[str, Any], record: Callable[[str], None]) -> None:
    with httpx.stream("POST", f"{url}/coordinator/infer", json=payload, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                record("done" if event["finished"] else "token")


def test_four_streams_through_one_worker_flow_together(cluster: Any, smollm2: Path) -> None:
    c: Cluster = cluster(model=smollm2)
    c.add_worker("w1", "--slots", "4", ctx=512, threads=2)
    log: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        def record(kind: str) -> None:
            with lock:
                log.append((index, kind))

        payload = {"prompt": "Once upon a time", "model": "m", "max_tokens": 48, "temperature": 0}
        stream_events(c.url, payload, record)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(client, i) for i in range(4)]:
            future.result()
    assert sorted({i for i, _ in log}) == [0, 1, 2, 3]
    first_done = first(log, "done")
    assert all(first(log, "token", i) < first_done for i in range(4))
    assert sum(1 for _, k in log if k == "token") >= 4 * 40
