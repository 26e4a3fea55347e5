"""Cache-aware routing: a leading text goes back to the worker whose cache holds it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ishan_tools.infer.config import CoordinatorSettings, GenerationRequest
from ishan_tools.infer.coordinator.affinity import (
    BLOCK_CHARS,
    Affinity,
    leading_text,
    prefix_keys,
)
from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.coordinator.scheduler import pick
from ishan_tools.infer.errors import WorkerConflict

from .conftest import Cluster, wait_until, workers_of
from .test_scheduler import MB, beat, load

SYSTEM = "You are the harbour bookshop's assistant. " * 30  # 1,260 characters: 4 blocks


def test_keys_cover_whole_leading_blocks_and_name_the_whole_prefix() -> None:
    assert prefix_keys("x" * (BLOCK_CHARS - 1)) == []
    first = prefix_keys(SYSTEM + "When do you open?")
    second = prefix_keys(SYSTEM + "Do you sell maps?")
    assert len(first) == len(SYSTEM) // BLOCK_CHARS == 4
    assert first == second  # the questions sit in the last, partial block
    other = prefix_keys("A" + SYSTEM[1:])
    assert not set(other) & set(first)  # a key stands for all the blocks before it
    chat = GenerationRequest(messages=(("system", SYSTEM), ("user", "hi")))
    assert leading_text(chat).startswith("\x1esystem\x1f" + SYSTEM)


def test_affinity_prefers_the_longest_match_and_stays_bounded() -> None:
    table = Affinity(max_entries=6)
    keys = prefix_keys(SYSTEM)
    table.record(keys[:2], "w1")
    table.record(keys, "w2")  # w2 served the longer text last
    assert table.lookup(keys) == "w2" and table.lookup(keys[:1]) == "w2"
    table.record(prefix_keys("B" * 1024), "w1")  # 4 more keys: the oldest 2 go
    assert len(table) == 6 and table.lookup(keys[:2]) is None and table.lookup(keys) == "w2"
    table.forget("w2")
    assert table.lookup(keys) is None and len(table) == 4


def test_the_preferred_worker_wins_unless_it_is_much_busier_or_its_slots_are_full() -> None:
    idle, busy = load("a", 0, 0), load("b", 3, 0)  # scores 0 and 0.18
    assert pick([idle, busy], preferred="b", margin=0.25) is busy
    assert pick([idle, busy], preferred="b", margin=0.1) is idle
    assert pick([idle, busy], preferred="gone", margin=0.25) is idle
    full = load("b", 0, 95)  # no room for another session: never picked
    assert pick([idle, full], preferred="b", margin=1.0) is idle
    with_slots = [
        load("a", 0, 0).__class__("a", 1, 10, 0, 100 * MB, 10 * MB, slots=2),
        load("b", 0, 0).__class__("b", 2, 10, 0, 100 * MB, 10 * MB, slots=2),
    ]
    chosen = pick(with_slots, preferred="b", margin=0.25)
    assert chosen is not None and chosen.worker_id == "a"  # b would queue it; a has a slot


def test_a_restarted_worker_or_one_out_of_rotation_loses_its_affinity() -> None:
    now = [0.0]
    registry = Registry(CoordinatorSettings(), clock=lambda: now[0])
    registry.heartbeat(beat("w1", boot_id="one"))
    registry.heartbeat(beat("w2", boot_id="two"))
    keys = prefix_keys(SYSTEM)
    registry.affinity.record(keys, "w2")
    registry.heartbeat(beat("w2", boot_id="two"))  # the same process: kept
    assert registry.affinity.lookup(keys) == "w2"
    with pytest.raises(WorkerConflict):  # another process while w2 beats: not believed
        registry.heartbeat(beat("w2", boot_id="three"))
    assert registry.affinity.lookup(keys) == "w2"
    now[0] = 3.5  # the old w2 missed three heartbeats: the new one is taken
    registry.heartbeat(beat("w1", boot_id="one"))
    registry.heartbeat(beat("w2", boot_id="three"))  # restarted: its cache is empty
    assert registry.affinity.lookup(keys) is None
    registry.affinity.record(keys, "w2")
    now[0] = 7.0  # w2 missed three heartbeats (w1 beats on)
    registry.heartbeat(beat("w1", boot_id="one"))
    assert [w.worker_id for w in registry.candidates(set())] == ["w1"]
    assert registry.affinity.lookup(keys) is None


def complete(url: str, prompt: str, max_tokens: int = 4) -> httpx.Response:
    payload = {"prompt": prompt, "model": "m", "max_tokens": max_tokens, "temperature": 0}
    return httpx.post(f"{url}/v1/completions", json=payload, timeout=60)


def worker_stats(c: Cluster) -> dict[str, dict[str, Any]]:
    urls = {str(w["worker_id"]): str(w["url"]) for w in workers_of(c.url)}
    return {w: httpx.get(f"{u}/worker/health", timeout=5).json() for w, u in urls.items()}


def test_repeated_prefixes_land_on_one_worker_and_hit_its_cache(
    cluster: Any, smollm2: Path
) -> None:
    c: Cluster = cluster(model=smollm2)
    c.add_worker("w1", ctx=1024)
    c.add_worker("w2", ctx=1024)
    assert complete(c.url, SYSTEM + "When do you open?").status_code == 200  # idle: to w1
    stop = threading.Event()

    def filler() -> None:  # a short prompt (no affinity): to w1, the first listed
        payload = {"prompt": "hi", "model": "m", "max_tokens": 900, "temperature": 0}
        with httpx.stream("POST", f"{c.url}/coordinator/infer", json=payload, timeout=60) as r:
            for _ in r.iter_lines():
                if stop.is_set():
                    return

    reader = threading.Thread(target=filler)
    reader.start()
    try:
        wait_until(lambda: [w["sessions"] for w in workers_of(c.url)] == [1, 0])
        for question in ("Do you sell maps?", "Any readings?", "Gift cards?"):
            # load alone would pick the idle w2; the prefix goes back to w1's cache
            assert complete(c.url, SYSTEM + question).status_code == 200
    finally:
        stop.set()
        reader.join()
    metrics = httpx.get(f"{c.url}/metrics", timeout=5).text
    assert 'ishan_infer_routing_affinity_total{outcome="followed"} 3.0' in metrics
    stats = worker_stats(c)
    assert stats["w1"]["prefix_cache_hits"] == 3
    assert stats["w1"]["prefix_cache_reused_tokens"] > 3 * 200
    assert stats["w2"]["completed"] + stats["w2"]["cancelled"] == 0


def test_a_hot_prefix_does_not_starve_the_other_worker(cluster: Any, smollm2: Path) -> None:
    c: Cluster = cluster(model=smollm2)
    c.add_worker("w1", "--slots", "2", ctx=1024)
    c.add_worker("w2", "--slots", "2", ctx=1024)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda i: complete(c.url, SYSTEM + f"Q{i}", 48), range(5)))
    assert all(a.status_code == 200 for a in answers)
    served = sorted(s["completed"] for s in worker_stats(c).values())
    assert served == [2, 3]  # not five on one worker, three of them queued behind two


def routed(url: str) -> dict[str, float]:
    """The coordinator's affinity counters by outcome (followed, overridden)."""
    prefix = "ishan_infer_routing_affinity_total{outcome="
    lines = httpx.get(f"{url}/metrics", timeout=5).text.splitlines()
    return {
        line[len(prefix) + 1 : line.index('"}')]: float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith(prefix)
    }


def test_a_restarted_worker_gets_no_stale_affinity(cluster: Any, smollm2: Path) -> None:
    c: Cluster = cluster(model=smollm2)
    c.add_worker("w1", ctx=1024)
    c.add_worker("w2", ctx=1024)
    assert complete(c.url, SYSTEM + "When do you open?").status_code == 200
    [owner] = [w for w, s in worker_stats(c).items() if s["completed"] == 1]
    c.workers[owner].signal(9)  # its KV cache, and the prefix in it, are gone
    c.add_worker(owner, ctx=1024)  # the same id, a new process
    assert complete(c.url, SYSTEM + "Do you sell maps?").status_code == 200
    assert routed(c.url).get("followed", 0) == 0  # nothing sent after the dead cache
    assert complete(c.url, SYSTEM + "Gift cards?").status_code == 200
    assert routed(c.url).get("followed", 0) == 1  # the new owner was learned ...
    hits = {w: s["prefix_cache_hits"] for w, s in worker_stats(c).items()}
    assert sorted(hits.values()) == [0, 1]  # ... and its cache served the third request
