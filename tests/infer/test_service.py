"""Coordinator and workers as real processes: the coordinator API, failures and backpressure."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from .conftest import Cluster, healthy_ids, wait_until, workers_of

LONG = 4000  # tokens: the tiny model streams for several seconds


def body(max_tokens: int = 8, **extra: Any) -> dict[str, Any]:
    return {
        "prompt": "hello world",
        "model": "tinyllama-1.1b",
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }


@contextmanager
def infer(url: str, payload: dict[str, Any]) -> Iterator[Iterator[dict[str, Any]]]:
    """POST /coordinator/infer; yields an iterator over the SSE events' JSON."""
    with httpx.stream("POST", f"{url}/coordinator/infer", json=payload, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")

        def events() -> Iterator[dict[str, Any]]:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    yield json.loads(line[6:])

        yield events()


def worker_health(cluster: Cluster, worker_id: str) -> dict[str, Any]:
    url = next(w["url"] for w in workers_of(cluster.url) if w["worker_id"] == worker_id)
    health: dict[str, Any] = httpx.get(f"{url}/worker/health", timeout=5).json()
    return health


def coordinator_sessions(cluster: Cluster) -> int:
    return int(httpx.get(f"{cluster.url}/coordinator/health", timeout=5).json()["sessions"])


def test_tokens_stream_in_the_coordinator_api_format(cluster: Any) -> None:
    c: Cluster = cluster()
    c.add_worker("w1")
    with infer(c.url, body(max_tokens=8)) as events:
        received = list(events)
    assert len(received) == 9
    assert all(e["finished"] is False and e["token"] for e in received[:8])
    assert received[-1] == {"token": "", "finished": True}

    health = httpx.get(f"{c.url}/coordinator/health").json()
    assert (health["status"], health["workers"], health["healthy_workers"]) == ("ok", 1, 1)
    [listed] = workers_of(c.url)
    assert listed["worker_id"] == "w1" and listed["healthy"] is True
    assert listed["sessions"] == 0 and listed["kv_used_bytes"] == 0
    assert listed["kv_capacity_bytes"] > 0 and listed["last_heartbeat_s"] < 5
    assert worker_health(c, "w1")["completed"] == 1


def test_bad_requests_get_400_with_a_json_error(cluster: Any) -> None:
    c: Cluster = cluster()
    c.add_worker("w1", ctx=512)
    endpoint = f"{c.url}/coordinator/infer"
    cases = [
        ({"model": "m", "max_tokens": 4}, "'prompt' is required"),
        ({"prompt": "hi", "max_tokens": 4}, "'model' is required"),
        ({"prompt": "hi", "model": "m", "max_tokens": -1}, "'max_tokens'"),
        ({"prompt": "hi", "model": "m", "max_tokens": 100000}, "context holds 512"),
        ({"prompt": "hello " * 1000, "model": "m", "max_tokens": 4}, "context window"),
    ]
    for payload, message in cases:
        response = httpx.post(endpoint, json=payload, timeout=30)
        assert response.status_code == 400, payload
        assert message in response.json()["error"]
    response = httpx.post(endpoint, content=b"{not json", timeout=30)
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    assert workers_of(c.url)[0]["breaker"] == "closed"  # client errors are not worker failures


def test_503_without_workers_and_when_every_worker_is_full(cluster: Any) -> None:
    c: Cluster = cluster()
    response = httpx.post(f"{c.url}/coordinator/infer", json=body(), timeout=30)
    assert response.status_code == 503 and "no healthy worker" in response.json()["error"]
    c.add_worker("w1", "--max-sessions", "1", ctx=8192)
    with infer(c.url, body(max_tokens=LONG)) as events:
        next(events)
        response = httpx.post(f"{c.url}/coordinator/infer", json=body(), timeout=30)
        assert response.status_code == 503 and "capacity" in response.json()["error"]
    wait_until(lambda: coordinator_sessions(c) == 0)
    with infer(c.url, body(max_tokens=2)) as events:
        assert list(events)[-1] == {"token": "", "finished": True}


def test_the_system_wide_session_limit_answers_503_at_once(cluster: Any) -> None:
    c: Cluster = cluster("--limit", "sessions=1")
    c.add_worker("w1", ctx=8192)
    with infer(c.url, body(max_tokens=LONG)) as events:
        next(events)
        response = httpx.post(f"{c.url}/coordinator/infer", json=body(), timeout=30)
        assert response.status_code == 503
        assert "system is at capacity" in response.json()["error"]
    health = httpx.get(f"{c.url}/coordinator/health").json()
    assert health["limits"]["max_sessions"] == 1


def test_a_worker_killed_mid_stream_ends_the_stream_with_an_error(cluster: Any) -> None:
    c: Cluster = cluster()
    worker = c.add_worker("w1", ctx=8192)
    with infer(c.url, body(max_tokens=LONG)) as events:
        first = next(events)
        worker.signal(signal.SIGKILL)
        received = [first, *events]
    assert first["finished"] is False and first["token"]
    last = received[-1]
    assert last["finished"] is True and last["token"] == ""
    assert "w1" in last["error"] and "mid-stream" in last["error"]
    assert len(received) < LONG
    wait_until(lambda: coordinator_sessions(c) == 0)


def test_a_silent_worker_leaves_rotation_and_returns(cluster: Any) -> None:
    c: Cluster = cluster()
    worker = c.add_worker("w1")
    worker.signal(signal.SIGSTOP)
    wait_until(lambda: healthy_ids(c.url) == set())
    [listed] = workers_of(c.url)
    assert listed["last_heartbeat_s"] > 0.6  # three 0.2 s heartbeats missed
    response = httpx.post(f"{c.url}/coordinator/infer", json=body(), timeout=30)
    assert response.status_code == 503
    worker.signal(signal.SIGCONT)
    wait_until(lambda: healthy_ids(c.url) == {"w1"})
    with infer(c.url, body(max_tokens=3)) as events:
        assert len(list(events)) == 4


def test_prefill_failures_are_retried_on_another_worker(cluster: Any) -> None:
    c: Cluster = cluster("--first-token-timeout", "1")
    slow_beats = ("--heartbeat-interval", "30")  # stay "alive" while stopped or dead
    hung = c.add_worker("w1", *slow_beats)
    c.add_worker("w2", *slow_beats)
    # A hung worker accepts the connection but never answers: retried after 1 s.
    hung.signal(signal.SIGSTOP)
    with infer(c.url, body(max_tokens=4)) as events:
        assert len(list(events)) == 5
    assert worker_health(c, "w2")["completed"] == 1
    # A dead worker refuses connections: retried at once; its breaker opens after 3 failures.
    hung.signal(signal.SIGKILL)
    for _ in range(2):
        with infer(c.url, body(max_tokens=4)) as events:
            assert list(events)[-1] == {"token": "", "finished": True}
    w1 = next(w for w in workers_of(c.url) if w["worker_id"] == "w1")
    assert (w1["breaker"], w1["healthy"]) == ("open", False)
    assert worker_health(c, "w2")["completed"] == 3


def test_502_when_the_only_worker_fails_before_the_first_token(cluster: Any) -> None:
    c: Cluster = cluster("--first-token-timeout", "0.5")
    c.add_worker("w1", "--heartbeat-interval", "30").signal(signal.SIGSTOP)
    response = httpx.post(f"{c.url}/coordinator/infer", json=body(), timeout=30)
    assert response.status_code == 502 and "w1" in response.json()["error"]
    assert coordinator_sessions(c) == 0


def test_a_client_that_disconnects_frees_its_session_at_once(cluster: Any) -> None:
    c: Cluster = cluster()
    c.add_worker("w1", ctx=8192)
    with infer(c.url, body(max_tokens=LONG)) as events:
        next(events)
        assert coordinator_sessions(c) == 1
    wait_until(lambda: worker_health(c, "w1")["sessions"] == 0)
    health = worker_health(c, "w1")
    assert (health["cancelled"], health["completed"]) == (1, 0)
    assert coordinator_sessions(c) == 0
    assert workers_of(c.url)[0]["kv_used_bytes"] == 0


def test_a_slow_client_is_dropped_and_the_worker_carries_on(cluster: Any) -> None:
    c: Cluster = cluster("--client-buffer", "16")
    c.add_worker("w1", ctx=8192)
    address = urlsplit(c.url)
    raw = json.dumps(body(max_tokens=LONG)).encode()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((address.hostname, address.port))
    sock.sendall(
        b"POST /coordinator/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(raw), raw)
    )
    try:  # read nothing while the worker generates: the coordinator's buffer overflows
        ended = lambda: worker_health(c, "w1")  # noqa: E731
        wait_until(lambda: ended()["cancelled"] + ended()["completed"] == 1, timeout=60)
        assert (ended()["cancelled"], ended()["sessions"]) == (1, 0)
        assert coordinator_sessions(c) == 0
        received = b""
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            received += chunk
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 200")
    assert b'"finished": true' not in received  # dropped: the connection just closed
    assert received.count(b'"finished": false') < LONG
    with infer(c.url, body(max_tokens=3)) as events:
        assert len(list(events)) == 4


def test_an_idle_session_expires_after_its_ttl(cluster: Any) -> None:
    c: Cluster = cluster("--session-ttl", "1")
    worker = c.add_worker("w1", "--heartbeat-interval", "30", ctx=8192)
    with infer(c.url, body(max_tokens=LONG)) as events:
        next(events)
        worker.signal(signal.SIGSTOP)
        last = list(events)[-1]
    assert last["finished"] is True and "session expired" in last["error"]
    assert coordinator_sessions(c) == 0


def test_a_client_that_leaves_before_its_first_token_frees_its_queued_session(
    cluster: Any,
) -> None:
    c: Cluster = cluster()
    c.add_worker("w1", "--slots", "1", ctx=8192)
    address = urlsplit(c.url)
    raw = json.dumps(body(max_tokens=4)).encode()
    with infer(c.url, body(max_tokens=LONG)) as running:
        next(running)
        with socket.create_connection((address.hostname, address.port)) as sock:
            sock.sendall(
                b"POST /coordinator/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
                b"\r\ncontent-length: %d\r\n\r\n%s" % (len(raw), raw)
            )
            wait_until(lambda: worker_health(c, "w1")["waiting"] == 1)  # behind the one slot
        # hung up while queued: freed at once, not when the slot comes free
        wait_until(lambda: worker_health(c, "w1")["cancelled"] == 1, timeout=5)
        health = worker_health(c, "w1")
        assert (health["sessions"], health["waiting"], health["completed"]) == (1, 0, 0)
        assert coordinator_sessions(c) == 1
        assert next(running)["finished"] is False  # the running stream carries on
        metrics = httpx.get(f"{c.url}/metrics", timeout=5).text
        assert 'endpoint="/coordinator/infer",outcome="client-disconnect"} 1.0' in metrics
    wait_until(lambda: coordinator_sessions(c) == 0)
