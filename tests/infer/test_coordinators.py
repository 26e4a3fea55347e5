"""Several coordinators behind a real nginx, every worker sending heartbeats to all of them:
a coordinator killed mid-stream costs only its own streams, comes back and sees every worker
at once, agrees with the other on where a leading text goes, and keeps a worker it cannot
reach out of its rotation only."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ishan_tools.errors import UsageError
from ishan_tools.infer.coordinator.affinity import owner, prefix_keys
from ishan_tools.infer.options import coordinator_urls
from tests.harness.nginx import Nginx

from .conftest import Proc, closed_port, healthy_ids, wait_until, workers_of
from .test_routing import SYSTEM

LONG = 4000  # tokens: the tiny model streams for several seconds


class HA:
    """Coordinators A and B, nginx in front, workers beating to both; stops everything."""

    def __init__(self, folder: Path, balancer: bool = True) -> None:
        self.procs: list[Proc] = []
        self.coordinators = [self._start(["coordinator", "--port", "0"]) for _ in range(2)]
        self.urls = [c.url for c in self.coordinators]
        self.nginx = Nginx(self.urls, folder / "nginx") if balancer else None
        self.workers: dict[str, Proc] = {}

    def _start(self, args: list[str]) -> Proc:
        proc = Proc(args)
        self.procs.append(proc)
        return proc

    def add_worker(
        self, worker_id: str, model: Path, *coordinators: str, ctx: int = 8192, beat: float = 0.2
    ) -> Proc:
        urls = coordinators or tuple(self.urls)
        proc = self._start(
            [
                "worker",
                *(arg for url in urls for arg in ("--coordinator-url", url)),
                *("--worker-id", worker_id, "--port", "0", "--model", str(model)),
                *("--ctx", str(ctx), "--threads", "1", "--heartbeat-interval", str(beat)),
            ]
        )
        self.workers[worker_id] = proc
        for url in self.urls:
            wait_until(lambda url=url: worker_id in {str(w["worker_id"]) for w in workers_of(url)})
        return proc

    def restart(self, index: int) -> Proc:
        port = self.urls[index].rsplit(":", 1)[1]
        self.coordinators[index] = self._start(["coordinator", "--port", port])
        return self.coordinators[index]

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for proc in reversed(self.procs):
            proc.stop()


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[Any]:
    made: list[HA] = []

    def make(balancer: bool = True) -> HA:
        made.append(HA(tmp_path, balancer))
        return made[-1]

    yield make
    for h in made:
        h.stop()


def worker_health(h: HA, worker_id: str) -> dict[str, Any]:
    health: dict[str, Any] = httpx.get(
        f"{h.workers[worker_id].url}/worker/health", timeout=5
    ).json()
    return health


def seen_by(url: str) -> dict[str, dict[str, Any]]:
    return {str(w["worker_id"]): w for w in workers_of(url)}


def body(prompt: str = "hello world", max_tokens: int = 8) -> dict[str, Any]:
    return {"prompt": prompt, "model": "m", "max_tokens": max_tokens, "temperature": 0}


class Reader:
    """A stream through nginx, read in a thread: its events, and how it ended."""

    def __init__(self, url: str, payload: dict[str, Any]) -> None:
        self.events: list[dict[str, Any]] = []
        self.error: str | None = None
        self.coordinator = ""
        self.started = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._read, args=(url, payload), daemon=True).start()
        assert self.started.wait(30), self.error

    def _read(self, url: str, payload: dict[str, Any]) -> None:
        try:
            with httpx.stream("POST", f"{url}/coordinator/infer", json=payload, timeout=30) as r:
                self.coordinator = r.headers.get("x-ishan-coordinator", "")
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
                        self.started.set()
        except httpx.HTTPError as exc:
            self.error = repr(exc)
        finally:
            self.started.set()
            self.done.set()

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1]["finished"] is True


def test_a_coordinator_killed_mid_stream_costs_only_its_streams(ha: Any, tiny_model: Path) -> None:
    h: HA = ha()
    assert h.nginx is not None
    h.add_worker("w1", tiny_model, beat=1.0)
    h.add_worker("w2", tiny_model, beat=1.0)
    first = Reader(h.nginx.url, body(max_tokens=LONG))
    by_port = {url.rsplit(":", 1)[1]: i for i, url in enumerate(h.urls)}
    killed = by_port[first.coordinator.rsplit(":", 1)[1]]
    other = 1 - killed
    # the other coordinator learns of that session from w1's next heartbeat ...
    wait_until(lambda: seen_by(h.urls[other])["w1"]["sessions"] == 1, timeout=3)
    second = Reader(h.nginx.url, body(max_tokens=LONG))  # round robin: the other one
    assert second.coordinator.rsplit(":", 1)[1] == h.urls[other].rsplit(":", 1)[1]
    # ... so it sent its own stream to the idle w2
    wait_until(lambda: worker_health(h, "w2")["sessions"] == 1, timeout=3)
    assert worker_health(h, "w1")["sessions"] == 1

    h.coordinators[killed].signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert first.done.wait(5)  # its client saw the stream end, without a last event
    assert not first.finished and len(first.events) < LONG
    wait_until(lambda: worker_health(h, "w1")["sessions"] == 0, timeout=2)
    assert worker_health(h, "w1")["kv_used_bytes"] == 0  # its KV freed as well
    freed_in = time.monotonic() - killed_at
    assert freed_in < 2 and not second.done.is_set()  # the other stream still runs ...
    assert second.done.wait(60)
    assert second.finished and "error" not in second.events[-1]  # ... to its end
    assert len(second.events) == LONG + 1
    for _ in range(4):  # new requests through the balancer succeed
        response = httpx.post(f"{h.nginx.url}/coordinator/infer", json=body(), timeout=30)
        assert response.status_code == 200 and '"finished": true' in response.text

    back = h.restart(killed)
    started = time.monotonic()
    wait_until(lambda: healthy_ids(back.url) == {"w1", "w2"}, timeout=5, interval=0.02)
    assert time.monotonic() - started < 1.0  # within one heartbeat interval (1 s)


def test_each_coordinator_sees_what_the_other_opens_between_heartbeats(
    ha: Any, tiny_model: Path
) -> None:
    h: HA = ha(balancer=False)
    a, b = h.urls
    h.add_worker("w1", tiny_model, beat=30.0)  # no periodic heartbeat during the test
    h.add_worker("w2", tiny_model, beat=30.0)
    first = Reader(a, body(max_tokens=LONG))  # A sends it to w1, the first listed
    wait_until(lambda: seen_by(b)["w1"]["sessions"] == 1, timeout=2)  # w1 told B at once
    assert seen_by(b)["w1"]["own_sessions"] == 0
    second = Reader(b, body(max_tokens=LONG))  # so B sends its own to the idle w2
    wait_until(lambda: worker_health(h, "w2")["sessions"] == 1, timeout=3)
    assert worker_health(h, "w1")["sessions"] == 1
    wait_until(lambda: seen_by(a)["w2"]["sessions"] == 1, timeout=2)  # and A sees B's
    assert first.done.wait(60) and second.done.wait(60)
    assert first.finished and second.finished
    for url in (a, b):  # the sessions' ends reach both as well
        wait_until(lambda url=url: [w["sessions"] for w in workers_of(url)] == [0, 0], timeout=2)


def test_a_worker_says_whether_a_session_waits_for_a_slot(tiny_model: Path) -> None:
    worker = Proc(
        ["worker", "--port", "0", "--model", str(tiny_model), "--slots", "1", "--ctx", "8192"]
    )
    try:
        url = f"{worker.url}/worker/generate"
        with httpx.stream("POST", url, json=body(max_tokens=LONG), timeout=30) as running:
            assert running.headers["x-ishan-queued"] == "0"  # the free slot is its own
            assert running.headers["x-ishan-worker-sessions"] == "1"
            with httpx.stream("POST", url, json=body(max_tokens=LONG), timeout=30) as queued:
                assert queued.headers["x-ishan-queued"] == "1"  # behind the running one
                assert queued.headers["x-ishan-worker-sessions"] == "2"
    finally:
        worker.stop()


def test_a_warm_prefix_sent_through_both_coordinators_hits_one_cache(
    ha: Any, smollm2: Path
) -> None:
    h: HA = ha()
    assert h.nginx is not None
    h.add_worker("w1", smollm2, ctx=1024)
    h.add_worker("w2", smollm2, ctx=1024)
    served_by = []
    for question in ("When do you open?", "Do you sell maps?", "Any readings?", "Gift cards?"):
        response = httpx.post(
            f"{h.nginx.url}/v1/completions", json=body(SYSTEM + question, 4), timeout=60
        )
        assert response.status_code == 200
        served_by.append(response.headers["x-ishan-coordinator"])
    assert len(set(served_by)) == 2 and served_by[0] == served_by[2] != served_by[1]
    stats = {w: worker_health(h, w) for w in ("w1", "w2")}
    home = owner(prefix_keys(SYSTEM), ["w1", "w2"])
    away = "w2" if home == "w1" else "w1"
    assert stats[home]["completed"] == 4 and stats[away]["completed"] == 0
    assert stats[home]["prefix_cache_hits"] == 3  # the three after the first, both ways
    assert stats[home]["prefix_cache_reused_tokens"] > 3 * 200


def owned_by(worker_id: str, workers: list[str], count: int) -> list[str]:
    """Prompts of more than one block whose owner among `workers` is `worker_id`."""
    texts = (f"{i:03d} " + SYSTEM[:300] for i in range(1000))
    return [t for t in texts if owner(prefix_keys(t), workers) == worker_id][:count]


def test_a_worker_one_coordinator_cannot_reach_is_out_of_its_rotation_only(
    ha: Any, tiny_model: Path
) -> None:
    h: HA = ha(balancer=False)
    a, b = h.urls
    with socket.socket() as silent:  # a coordinator that accepts and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        h.add_worker("w1", tiny_model, silent_url, a, b, ctx=2048)
        # the silent one delays no heartbeat to the others (each has its own loop)
        for _ in range(10):
            assert seen_by(b)["w1"]["last_heartbeat_s"] < 0.6
            time.sleep(0.1)
    unreachable = f"http://127.0.0.1:{closed_port()}"
    h.add_worker("w2", tiny_model, f"{a}={unreachable}", b, ctx=2048)  # A gets a dead URL
    assert seen_by(a)["w2"]["url"] == unreachable
    prompts = owned_by("w2", ["w1", "w2"], 4)
    for prompt in prompts[:3]:  # each tries w2 first, fails, and is retried on w1
        response = httpx.post(f"{a}/coordinator/infer", json=body(prompt), timeout=30)
        assert response.status_code == 200 and '"finished": true' in response.text
    at_a = seen_by(a)
    assert at_a["w2"]["breaker"] == "open" and not at_a["w2"]["healthy"]
    assert healthy_ids(a) == {"w1"} and healthy_ids(b) == {"w1", "w2"}
    response = httpx.post(f"{b}/coordinator/infer", json=body(prompts[3]), timeout=30)
    assert response.status_code == 200
    assert worker_health(h, "w2")["completed"] == 1  # B still routes to w2
    assert worker_health(h, "w1")["completed"] == 3


def test_coordinator_urls_are_repeatable_and_split_on_commas_and_spaces() -> None:
    assert coordinator_urls(["http://a:1, http://b:2/", "http://c:3=http://w:9 http://a:1"]) == (
        ("http://a:1", None),
        ("http://b:2", None),
        ("http://c:3", "http://w:9"),
    )
    assert coordinator_urls(None) == ()
    with pytest.raises(UsageError, match="URL=WORKER_URL"):
        coordinator_urls(["http://a:1=ftp://w"])
    with pytest.raises(UsageError, match="http"):
        coordinator_urls(["a:1"])
