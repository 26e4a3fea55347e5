"""`GET /metrics` on the coordinator and a worker, scraped after real requests."""

from __future__ import annotations

import signal
import threading
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import Cluster, wait_until, workers_of
from .test_service import LONG, body, infer

TINY = "tiny-random-llama"  # the model name of the tiny GGUF: its file's stem


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(url: str, endpoint: str, outcome: str) -> float:
    return value(scrape(url), "ishan_infer_requests_total", endpoint=endpoint, outcome=outcome)


def worker_url(c: Cluster) -> str:
    return str(workers_of(c.url)[0]["url"])


def test_metrics_follow_requests_tokens_sessions_and_outcomes(cluster: Any) -> None:
    c: Cluster = cluster("--first-token-timeout", "0.5")
    infer_path = "/coordinator/infer"
    assert httpx.post(f"{c.url}{infer_path}", json=body(), timeout=30).status_code == 503
    assert requests(c.url, infer_path, "503") == 1

    c.add_worker("w1", ctx=8192)
    for _ in range(2):
        with infer(c.url, body(max_tokens=8)) as events:
            assert len(list(events)) == 9
    bad = httpx.post(f"{c.url}{infer_path}", json=body(temperature=5), timeout=30)
    assert bad.status_code == 400
    plain = httpx.post(f"{c.url}/v1/completions", json=body(max_tokens=3), timeout=30)
    assert plain.status_code == 200

    coordinator, worker = scrape(c.url), scrape(worker_url(c))
    assert value(coordinator, "ishan_infer_requests_total", endpoint=infer_path, outcome="200") == 2
    assert value(coordinator, "ishan_infer_requests_total", endpoint=infer_path, outcome="400") == 1
    assert (
        value(coordinator, "ishan_infer_requests_total", endpoint="/v1/completions", outcome="200")
        == 1
    )
    assert value(coordinator, "ishan_infer_tokens_generated_total") == 16  # streamed ones
    assert value(coordinator, "ishan_infer_time_to_first_token_seconds_count") == 2
    assert value(coordinator, "ishan_infer_inter_token_seconds_count") == 14
    assert value(coordinator, "ishan_infer_worker_healthy", worker="w1", model=TINY) == 1
    breaker = "ishan_infer_worker_breaker_state"
    assert value(coordinator, breaker, worker="w1", model=TINY, state="closed") == 1
    assert value(coordinator, breaker, worker="w1", model=TINY, state="open") == 0
    assert value(coordinator, "ishan_infer_model_workers", model=TINY) == 1
    endpoint = "/worker/generate"
    assert value(worker, "ishan_infer_requests_total", endpoint=endpoint, outcome="200") == 3
    assert value(worker, "ishan_infer_tokens_generated_total") == 19
    assert value(worker, "ishan_infer_time_to_first_token_seconds_count") == 3
    assert value(worker, "ishan_infer_sessions_ended_total", outcome="completed") == 3
    assert value(worker, "ishan_infer_kv_capacity_bytes") > 0
    assert value(worker, "ishan_infer_slots") >= 1
    names = {name for name, _ in {**coordinator, **worker}}
    assert all(name.startswith("ishan_infer_") for name in names)

    with infer(c.url, body(max_tokens=LONG)) as events:
        next(events)
        coordinator, worker = scrape(c.url), scrape(worker_url(c))
        assert value(coordinator, "ishan_infer_sessions_active") == 1
        assert value(coordinator, "ishan_infer_kv_used_bytes") > 0
        assert value(worker, "ishan_infer_sessions_active") == 1
        assert value(worker, "ishan_infer_kv_cached_bytes") > 0
    wait_until(lambda: requests(c.url, infer_path, "client-disconnect") == 1)
    wait_until(lambda: requests(worker_url(c), endpoint, "client-disconnect") == 1)
    wait_until(lambda: value(scrape(worker_url(c)), "ishan_infer_sessions_active") == 0)
    assert value(scrape(c.url), "ishan_infer_sessions_active") == 0

    c.workers["w1"].signal(signal.SIGSTOP)
    assert httpx.post(f"{c.url}{infer_path}", json=body(), timeout=30).status_code == 502
    assert requests(c.url, infer_path, "502") == 1


def test_a_worker_slow_to_its_first_token_opens_its_breaker(cluster: Any) -> None:
    """`--breaker-slow-first-token 1`: a worker held (SIGSTOP) 1.5 s before each first token
    still answers, but three such answers in a row open its breaker; /metrics shows it."""
    c: Cluster = cluster("--breaker-slow-first-token", "1")
    worker = c.add_worker("w1", "--heartbeat-interval", "30")  # stays "alive" while stopped
    with infer(c.url, body(max_tokens=2)) as events:
        assert len(list(events)) == 3  # a quick first token: not a slow call
    for _ in range(3):
        worker.signal(signal.SIGSTOP)
        timer = threading.Timer(1.5, worker.signal, (signal.SIGCONT,))
        timer.start()
        with infer(c.url, body(max_tokens=2)) as events:
            assert list(events)[-1] == {"token": "", "finished": True}
        timer.join()
    samples = scrape(c.url)
    w1 = {"worker": "w1", "model": "tiny-random-llama"}  # the tiny GGUF's stem
    assert value(samples, "ishan_infer_worker_breaker_slow_calls_total", **w1) == 3
    assert value(samples, "ishan_infer_worker_breaker_state", **w1, state="open") == 1
    [listed] = workers_of(c.url)
    assert (listed["breaker"], listed["breaker_slow_calls"]) == ("open", 3)
    assert listed["healthy"] is False
    response = httpx.post(f"{c.url}/coordinator/infer", json=body(), timeout=30)
    assert response.status_code == 503  # no worker to send it to until the recovery trial
