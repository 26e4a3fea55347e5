"""Hostile requests (issue 24): each kind a probe found, with its example, against real
processes (a coordinator and a worker on the tiny GGUF). The worker's pid never changes."""

from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ishan_tools.infer.config import CoordinatorSettings
from ishan_tools.infer.coordinator.app import warn_if_exposed

from .conftest import Cluster, healthy_ids, wait_until, workers_of
from .test_service import worker_health

CRASHERS: list[tuple[dict[str, Any], str]] = [
    ({"grammar": "root ::= [z-a]"}, "allows no token"),  # aborted the worker
    ({"json_schema": {"type": "string", "maxLength": 30000}}, "cannot be used"),  # segfault
    ({"grammar": 'root ::= x{0,1999}\nx ::= "a"? "a"?'}, "cannot be used"),  # grew unbounded
]


@pytest.fixture
def served(cluster: Any) -> Cluster:
    c: Cluster = cluster()
    c.add_worker("w1", ctx=8192)
    return c


def message_of(response: httpx.Response) -> str:
    error = response.json()["error"]
    return str(error["message"] if isinstance(error, dict) else error)


def pid_of(c: Cluster) -> int:
    return int(worker_health(c, "w1")["pid"])


def test_grammars_and_schemas_that_crashed_llama_cpp_get_400_and_the_worker_lives(
    served: Cluster,
) -> None:
    pid = pid_of(served)
    base = {"prompt": "hi", "model": "m", "max_tokens": 8}
    for extra, message in CRASHERS:
        response = httpx.post(f"{served.url}/coordinator/infer", json={**base, **extra}, timeout=60)
        assert response.status_code == 400, (extra, response.text)
        assert message in response.json()["error"], (extra, response.json())
    # the impossible repetition bound: this llama.cpp refuses none of it; it serves it
    repetition = {**base, "grammar": 'root ::= "a"{0,100000000}'}
    response = httpx.post(f"{served.url}/coordinator/infer", json=repetition, timeout=60)
    assert response.status_code == 200 and '"finished": true' in response.text
    assert pid_of(served) == pid and healthy_ids(served.url) == {"w1"}


def test_deep_json_gets_400_and_a_huge_body_413_on_both_servers(served: Cluster) -> None:
    worker_url = str(workers_of(served.url)[0]["url"])
    deep = ("[" * 10_000 + "]" * 10_000).encode()
    just_over = json.dumps({"prompt": "hi", "model": "m", "x": json.loads("[" * 64 + "]" * 64)})
    for url in (
        f"{served.url}/coordinator/infer",
        f"{served.url}/v1/chat/completions",
        f"{served.url}/coordinator/heartbeat",
        f"{worker_url}/worker/generate",
    ):
        for body in (deep, just_over.encode()):
            response = httpx.post(url, content=body, timeout=30)
            assert response.status_code == 400, (url, response.text)
            assert "nests deeper than 64 levels" in message_of(response)
    huge = json.dumps({"prompt": "x" * 20_000_000, "model": "m"}).encode()
    for url in (f"{served.url}/v1/completions", f"{worker_url}/worker/generate"):
        response = httpx.post(url, content=huge, timeout=60)
        assert response.status_code == 413, url
    assert healthy_ids(served.url) == {"w1"}


def test_a_prompt_that_cannot_fit_is_refused_before_it_is_tokenized(served: Cluster) -> None:
    worker_url = str(workers_of(served.url)[0]["url"])
    pid = pid_of(served)
    started = time.monotonic()
    body = {"prompt": "hello world " * 800_000, "raw": True, "max_tokens": 4}  # 9.6 MB
    response = httpx.post(f"{worker_url}/worker/generate", json=body, timeout=60)
    assert response.status_code == 400
    assert "over the context window of 8192" in response.json()["error"]
    assert time.monotonic() - started < 30
    assert pid_of(served) == pid and healthy_ids(served.url) == {"w1"}


def test_a_non_streaming_client_that_hangs_up_frees_its_session_within_a_second(
    served: Cluster,
) -> None:
    body = json.dumps({"prompt": "hi", "model": "m", "max_tokens": 8000}).encode()
    parts = urlsplit(served.url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_until(lambda: worker_health(served, "w1")["active"] == 1, timeout=10, interval=0.01)
    hung_up = time.monotonic()
    wait_until(lambda: worker_health(served, "w1")["sessions"] == 0, timeout=5, interval=0.02)
    assert time.monotonic() - hung_up < 1.0
    health = worker_health(served, "w1")
    assert (health["cancelled"], health["completed"]) == (1, 0)


def heartbeat(**overrides: Any) -> dict[str, Any]:
    beat: dict[str, Any] = {
        "worker_id": "w1",
        "url": "http://127.0.0.1:9/",
        "model": "tiny.gguf",
        "n_ctx": 4096,
        "max_sessions": 8,
        "kv_capacity_bytes": 2**30,
        "session_kv_bytes": 2**20,
        "heartbeat_interval": 0.2,
        "boot_id": "evil",
    }
    beat.update(overrides)
    return beat


def test_bad_heartbeats_get_400_and_a_live_workers_id_cannot_be_taken(served: Cluster) -> None:
    endpoint = f"{served.url}/coordinator/heartbeat"
    for bad in (
        {"worker_id": "w2", "n_ctx": -1},
        {"worker_id": "w2", "heartbeat_interval": 1e400},
        {"worker_id": "w2", "heartbeat_interval": 0},
        {"worker_id": "w2", "url": "javascript:alert(1)"},
        {"worker_id": "w2", "max_sessions": 0},
        {"worker_id": "w2", "session_kv_bytes": True},
        {"worker_id": ""},
    ):
        response = httpx.post(endpoint, content=json.dumps(heartbeat(**bad)), timeout=5)
        assert response.status_code == 400, (bad, response.text)
        assert "heartbeat field" in response.json()["error"]
    response = httpx.post(endpoint, json=heartbeat(), timeout=5)  # w1's id, another URL
    assert response.status_code == 409 and "is alive at" in response.json()["error"]
    assert [str(w["url"]).startswith("http://127.0.0.1:9") for w in workers_of(served.url)] == [
        False
    ]
    payload = {"prompt": "hi", "model": "m", "max_tokens": 4}
    answer = httpx.post(f"{served.url}/v1/completions", json=payload, timeout=30)
    assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 4


def test_a_coordinator_without_a_key_beyond_loopback_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "ishan_tools.infer"):
        warn_if_exposed(CoordinatorSettings(host="127.0.0.1"))
        warn_if_exposed(CoordinatorSettings(host="0.0.0.0", api_key="k"))
        assert caplog.records == []
        warn_if_exposed(CoordinatorSettings(host="0.0.0.0"))
    assert len(caplog.records) == 1
    assert "without --api-key" in caplog.records[0].getMessage()
