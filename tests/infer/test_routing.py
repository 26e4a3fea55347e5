"""Cache-aware routing: a leading text goes to its owner, whose cache holds it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ishan_tools.infer.config import CoordinatorSettings, GenerationRequest, Limits
from ishan_tools.infer.coordinator.affinity import (
    BLOCK_CHARS,
    leading_text,
    owner,
    prefix_keys,
)
from ishan_tools.infer.coordinator.registry import Registry
from ishan_tools.infer.coordinator.scheduler import pick
from ishan_tools.infer.errors import BadRequest, WorkerConflict
from ishan_tools.infer.protocol import KV_USED_HEADER, SESSIONS_HEADER

from .conftest import Cluster, healthy_ids, wait_until, workers_of
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


def test_the_owner_does_not_depend_on_order_and_a_leaving_worker_moves_only_its_keys() -> None:
    texts = [prefix_keys(f"{i:04d} " + SYSTEM) for i in range(300)]
    workers = ["w1", "w2", "w3"]
    owners = [owner(keys, workers) for keys in texts]
    assert owners == [owner(keys, reversed(workers)) for keys in texts]  # no shared state
    share = {w: owners.count(w) / len(owners) for w in workers}
    assert all(0.25 < part < 0.42 for part in share.values()), share
    without_w2 = [owner(keys, ["w1", "w3"]) for keys in texts]
    moved = [i for i, (a, b) in enumerate(zip(owners, without_w2, strict=True)) if a != b]
    assert moved == [i for i, a in enumerate(owners) if a == "w2"]  # w1's, w3's stay put
    assert owner([], workers) is None and owner(texts[0], []) is None
    questions = [prefix_keys(SYSTEM + q * 300) for q in "abc"]  # differ from block 5 on
    assert len({owner(keys, workers) for keys in questions}) == 1  # one shared prompt, one owner


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


def test_the_load_is_the_workers_report_plus_this_coordinators_changes_since() -> None:
    registry = Registry(CoordinatorSettings(limits=Limits(max_sessions=6)))
    record = registry.heartbeat(beat("w1", sessions=3, kv_used_bytes=30 * MB))  # others' 3
    load_of = record.load
    assert (load_of().sessions, load_of().kv_used_bytes) == (3, 30 * MB)
    held = registry.reserve(record)  # ours, not yet seen by the worker
    assert (load_of().sessions, load_of().kv_used_bytes) == (4, 30 * MB + held)
    registry.report(record, {SESSIONS_HEADER: "5", KV_USED_HEADER: str(50 * MB)})
    assert (load_of().sessions, load_of().kv_used_bytes) == (5, 50 * MB)  # it saw ours
    registry.reserve(record)
    assert registry.at_capacity()  # 6 sessions on the worker, 2 of them ours
    registry.release(record, held)
    assert not registry.at_capacity() and load_of().sessions == 5
    registry.report(record, {SESSIONS_HEADER: "x", KV_USED_HEADER: "-1"})  # ignored
    registry.heartbeat(beat("w1", sessions=1, kv_used_bytes=10 * MB))  # the others' ended
    assert (load_of().sessions, load_of().kv_used_bytes) == (1, 47 * MB)  # never below ours
    with pytest.raises(BadRequest, match="'sessions'"):
        registry.heartbeat(beat("w1", sessions=-1))


def test_a_worker_restarted_while_another_process_beats_under_its_id_is_refused() -> None:
    now = [0.0]
    registry = Registry(CoordinatorSettings(), clock=lambda: now[0])
    registry.heartbeat(beat("w1", boot_id="one"))
    registry.heartbeat(beat("w2", boot_id="two"))
    with pytest.raises(WorkerConflict):  # another process while w2 beats: not believed
        registry.heartbeat(beat("w2", boot_id="three"))
    now[0] = 3.5  # the old w2 missed three heartbeats: the new one is taken
    registry.heartbeat(beat("w1", boot_id="one"))
    assert registry.heartbeat(beat("w2", boot_id="three")).boot_id == "three"
    now[0] = 7.0  # w2 missed three heartbeats (w1 beats on)
    registry.heartbeat(beat("w1", boot_id="one"))
    assert [w.worker_id for w in registry.candidates(set())] == ["w1"]


def complete(url: str, prompt: str, max_tokens: int = 4) -> httpx.Response:
    payload = {"prompt": prompt, "model": "m", "max_tokens": max_tokens, "temperature": 0}
    return httpx.post(f"{url}/v1/completions", json=payload, timeout=60)


def ids_owner_first(text: str) -> tuple[str, str]:
    """ "w1" and "w2", the owner of `text` first (added first, it is listed first)."""
    chosen = owner(prefix_keys(text), ["w1", "w2"])
    return ("w1", "w2") if chosen == "w1" else ("w2", "w1")


def worker_stats(c: Cluster) -> dict[str, dict[str, Any]]:
    urls = {str(w["worker_id"]): str(w["url"]) for w in workers_of(c.url)}
    return {w: httpx.get(f"{u}/worker/health", timeout=5).json() for w, u in urls.items()}


def test_repeated_prefixes_land_on_one_worker_and_hit_its_cache(
    cluster: Any, smollm2: Path
) -> None:
    c: Cluster = cluster(model=smollm2)
    first, second = ids_owner_first(SYSTEM)
    c.add_worker(first, ctx=1024)
    c.add_worker(second, ctx=1024)
    assert complete(c.url, SYSTEM + "When do you open?").status_code == 200  # idle: to first
    stop = threading.Event()

    def filler() -> None:  # a short prompt (no key): to the first listed, the owner
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
            # load alone would pick the idle second; the prefix goes to its owner's cache
            assert complete(c.url, SYSTEM + question).status_code == 200
    finally:
        stop.set()
        reader.join()
    metrics = httpx.get(f"{c.url}/metrics", timeout=5).text
    assert 'ishan_infer_routing_affinity_total{outcome="followed"} 4.0' in metrics  # all
    stats = worker_stats(c)
    assert stats[first]["prefix_cache_hits"] == 3
    assert stats[first]["prefix_cache_reused_tokens"] > 3 * 200
    assert stats[second]["completed"] + stats[second]["cancelled"] == 0


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


def test_a_dead_owners_texts_go_to_the_second_and_come_back_when_it_returns(
    cluster: Any, smollm2: Path
) -> None:
    c: Cluster = cluster(model=smollm2)
    first, second = ids_owner_first(SYSTEM)
    c.add_worker(first, ctx=1024)
    c.add_worker(second, ctx=1024)
    assert complete(c.url, SYSTEM + "When do you open?").status_code == 200
    assert worker_stats(c)[first]["completed"] == 1
    c.workers[first].signal(9)  # its KV cache, and the prefix in it, are gone
    wait_until(lambda: first not in healthy_ids(c.url))
    assert complete(c.url, SYSTEM + "Do you sell maps?").status_code == 200
    took = httpx.get(f"{c.workers[second].url}/worker/health", timeout=5).json()
    assert took["completed"] == 1  # the second-ranked worker took it
    c.add_worker(first, ctx=1024)  # the same id, a new process: its texts come back
    assert complete(c.url, SYSTEM + "Gift cards?").status_code == 200
    assert complete(c.url, SYSTEM + "Any readings?").status_code == 200
    stats = worker_stats(c)
    assert stats[first]["completed"] == 2 and stats[second]["completed"] == 1
    assert (stats[first]["prefix_cache_hits"], stats[second]["prefix_cache_hits"]) == (1, 0)
    assert routed(c.url)["followed"] == 4
