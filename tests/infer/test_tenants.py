"""Tenants on a real coordinator and workers: keys, quotas with `Retry-After` (through the
`openai` client and its retries), models per tenant, usage, reload on SIGHUP."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.harness.waiting import wait_until

from .conftest import Cluster, ishan

CLUSTER_KEY = "cluster-s3cret"
# Streams long enough to hold their sessions while the test does something else (the tiny
# model writes a few hundred tokens a second on one busy thread).
LONG = {"ignore_eos": True, "temperature": 0}


def add_tenant(path: Path, name: str, *options: str) -> str:
    made = ishan("infer", "tenants", "add", name, "--file", str(path), *options)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def client(c: Cluster, key: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{c.url}/v1", api_key=key, max_retries=retries)


def start(cluster: Any, path: Path, *workers: tuple[str, str]) -> Cluster:
    """A coordinator with the tenants file and one worker per (id, model name)."""
    c: Cluster = cluster("--tenants", str(path), "--api-key", CLUSTER_KEY)
    for worker_id, name in workers or (("w1", "tiny"),):
        c.add_worker(worker_id, "--api-key", CLUSTER_KEY, "--model-name", name, ctx=4096)
    return c


class Held:
    """A long stream of a tenant's, read to its end in a thread."""

    def __init__(self, c: Cluster, key: str, tokens: int) -> None:
        self.lines: list[str] = []
        self.status = 0
        self.started = threading.Event()
        body = {"model": "tiny", "prompt": "hold", "stream": True, "max_tokens": tokens, **LONG}
        headers = {"authorization": f"Bearer {key}"}

        def read() -> None:
            with httpx.stream(
                "POST", f"{c.url}/v1/completions", json=body, headers=headers, timeout=60
            ) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    self.lines.append(line)
                    self.started.set()
            self.started.set()

        self.thread = threading.Thread(target=read, daemon=True)
        self.thread.start()
        assert self.started.wait(30)

    def finish(self) -> list[dict[str, Any]]:
        self.thread.join(60)
        assert not self.thread.is_alive()
        return [json.loads(line[6:]) for line in self.lines if line.startswith("data: {")]


@pytest.fixture
def tenants(tmp_path: Path) -> Path:
    return tmp_path / "tenants.toml"


def test_wrong_keys_get_401_and_a_tenant_sees_only_its_models(cluster: Any, tenants: Path) -> None:
    key = add_tenant(tenants, "team-a", "--models", "alpha")
    c = start(cluster, tenants, ("w1", "alpha"), ("w2", "beta"))
    with pytest.raises(openai.AuthenticationError):
        client(c, "not-a-key").models.list()
    with pytest.raises(openai.AuthenticationError):  # the cluster key is not a client key
        client(c, CLUSTER_KEY).models.list()
    assert httpx.post(f"{c.url}/coordinator/infer", json={"prompt": "x"}).status_code == 401

    api = client(c, key)
    assert [m.id for m in api.models.list().data] == ["alpha"]
    done = api.completions.create(model="alpha", prompt="hello", max_tokens=3)
    assert done.usage is not None and done.usage.completion_tokens == 3
    with pytest.raises(openai.NotFoundError) as hidden:
        api.completions.create(model="beta", prompt="hello", max_tokens=3)
    assert hidden.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as unknown:  # the same answer as a real unknown
        api.completions.create(model="gamma", prompt="hello", max_tokens=3)
    assert unknown.value.code == "model_not_found"
    answer = httpx.post(
        f"{c.url}/coordinator/infer",
        json={"prompt": "x", "model": "beta"},
        headers={"authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 404
    assert answer.json()["error"] == "model 'beta' is not served (served: alpha)"


def test_a_tenant_key_cannot_send_heartbeats_or_reach_a_worker(cluster: Any, tenants: Path) -> None:
    key = add_tenant(tenants, "team-a")
    c = start(cluster, tenants)
    beat = {"worker_id": "intruder", "url": "http://127.0.0.1:9", "model": "tiny"}
    for bearer in (key, None):
        headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
        answer = httpx.post(f"{c.url}/coordinator/heartbeat", json=beat, headers=headers)
        assert answer.status_code == 401
    worker_url = next(iter(c.workers.values())).url
    answer = httpx.post(
        f"{worker_url}/worker/generate",
        json={"prompt": "hello", "max_tokens": 2},
        headers={"authorization": f"Bearer {key}"},
    )
    assert answer.status_code == 401
    ids = {w["worker_id"] for w in httpx.get(f"{c.url}/coordinator/health/workers").json()}
    assert ids == {"w1"}


def test_a_tenant_at_its_session_limit_gets_429_and_the_openai_client_retries(
    cluster: Any, tenants: Path
) -> None:
    key = add_tenant(tenants, "team-a", "--max-sessions", "1")
    other = add_tenant(tenants, "team-b", "--max-sessions", "1")
    c = start(cluster, tenants)
    held = Held(c, key, 600)
    with pytest.raises(openai.RateLimitError) as limited:
        client(c, key).completions.create(model="tiny", prompt="hi", max_tokens=2)
    assert limited.value.response.headers["retry-after"] == "1"
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.body["type"] == "requests"  # type: ignore[index]
    # another tenant's limit is its own
    assert client(c, other).completions.create(model="tiny", prompt="hi", max_tokens=2)
    # with retries, the client waits Retry-After and gets in once the long stream has ended
    done = client(c, key, retries=60).completions.create(model="tiny", prompt="hi", max_tokens=2)
    assert done.usage is not None and done.usage.completion_tokens == 2
    events = held.finish()
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    metrics = httpx.get(f"{c.url}/metrics").text
    refused = 'ishan_infer_tenant_refusals_total{reason="sessions",tenant="team-a"}'
    count = next(line for line in metrics.splitlines() if line.startswith(refused))
    assert float(count.split()[-1]) >= 2  # the first 429 and at least one retried


def test_tokens_per_minute_and_the_max_tokens_cap(cluster: Any, tenants: Path) -> None:
    key = add_tenant(tenants, "team-a", "--tokens-per-minute", "40", "--max-tokens", "30")
    c = start(cluster, tenants)
    api = client(c, key)
    with pytest.raises(openai.BadRequestError, match="over this key's cap of 30"):
        api.completions.create(model="tiny", prompt="hello", max_tokens=31)
    first = api.completions.create(model="tiny", prompt="hello there", max_tokens=30)
    assert first.usage is not None and first.usage.total_tokens >= 40
    with pytest.raises(openai.RateLimitError) as limited:
        api.completions.create(model="tiny", prompt="hello", max_tokens=2)
    assert limited.value.body["type"] == "tokens"  # type: ignore[index]
    wait = int(limited.value.response.headers["retry-after"])
    assert 1 <= wait <= 60
    assert f"{first.usage.total_tokens} of 40 tokens per minute" in limited.value.message
    # no max_tokens: the default is lowered to the cap instead of refused
    capped = client(c, add_tenant(tenants, "team-b", "--max-tokens", "5"))
    ishan_reload(c)
    done = capped.completions.create(model="tiny", prompt="hello", extra_body={"ignore_eos": True})
    assert done.usage is not None and done.usage.completion_tokens == 5


def ishan_reload(c: Cluster) -> None:
    before = c.coordinator.output.count("tenants reloaded")
    c.coordinator.signal(signal.SIGHUP)
    wait_until(lambda: c.coordinator.output.count("tenants reloaded") > before)


def test_usage_for_admins_per_tenant_metrics_and_health_without_names(
    cluster: Any, tenants: Path
) -> None:
    admin = add_tenant(tenants, "ops", "--admin")
    key = add_tenant(tenants, "team-a", "--max-tokens", "8")
    c = start(cluster, tenants)
    api = client(c, key)
    for _ in range(2):
        api.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    with pytest.raises(openai.BadRequestError):
        api.completions.create(model="tiny", prompt="hi", max_tokens=9)

    def usage(bearer: str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
        return httpx.get(f"{c.url}/coordinator/usage", headers=headers)

    assert usage(None).status_code == 401
    assert usage(key).status_code == 403
    report = usage(admin).json()["tenants"]
    team = report["team-a"]
    assert (team["requests"], team["completion_tokens"]) == (3, 8)
    assert team["prompt_tokens"] > 0 and team["refusals"] == {"max_tokens": 1}
    assert team["sessions"] == 0 and team["tokens_last_minute"] == team["prompt_tokens"] + 8
    assert report["ops"]["requests"] == 0

    metrics = httpx.get(f"{c.url}/metrics").text
    assert 'ishan_infer_tenant_completion_tokens_total{tenant="team-a"} 8.0' in metrics
    assert 'ishan_infer_tenant_requests_total{tenant="team-a"} 3.0' in metrics
    assert key not in metrics and admin not in metrics
    for health in ("/coordinator/health", "/coordinator/health/workers"):
        assert "team-a" not in httpx.get(f"{c.url}{health}").text
    assert key not in c.coordinator.output


def test_sighup_reloads_the_file_without_dropping_a_stream(cluster: Any, tenants: Path) -> None:
    old = add_tenant(tenants, "team-a")
    c = start(cluster, tenants)
    held = Held(c, old, 2000)
    new = add_tenant(tenants, "team-b")
    with pytest.raises(openai.AuthenticationError):
        client(c, new).completions.create(model="tiny", prompt="hi", max_tokens=2)
    ishan_reload(c)
    assert client(c, new).completions.create(model="tiny", prompt="hi", max_tokens=2)
    tenants.write_text("this is not TOML [")
    c.coordinator.signal(signal.SIGHUP)
    wait_until(lambda: "tenants not reloaded" in c.coordinator.output)
    line = next(x for x in c.coordinator.output.splitlines() if "tenants not reloaded" in x)
    assert line.startswith("tenants not reloaded, keeping the 2 in use: ")
    assert "not valid TOML" in line
    assert client(c, old).completions.create(model="tiny", prompt="hi", max_tokens=2)
    assert held.thread.is_alive()  # both reloads came while the stream ran
    events = held.finish()
    assert held.status == 200
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    assert sum(1 for e in events if e["choices"][0].get("text")) > 100


def test_the_prefix_cache_is_reused_within_a_tenant_never_across(
    cluster: Any, tenants: Path
) -> None:
    keys = {name: add_tenant(tenants, name) for name in ("team-a", "team-b")}
    c = start(cluster, tenants)
    worker = next(iter(c.workers.values())).url
    prompt = "The same long shared preamble, word after word. " * 40

    def reused() -> int:
        return int(httpx.get(f"{worker}/worker/health").json()["prefix_cache_reused_tokens"])

    gained = []
    for name in ("team-a", "team-a", "team-b", "team-b"):
        before = reused()
        client(c, keys[name]).completions.create(
            model="tiny", prompt=prompt, max_tokens=2, temperature=0
        )
        gained.append(reused() - before)
    assert gained[0] == 0 and gained[2] == 0  # b reuses nothing of a's
    assert gained[1] > 300 and gained[3] == gained[1]  # each reuses its own
