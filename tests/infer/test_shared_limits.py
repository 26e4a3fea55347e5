"""Tenant limits kept in a real Redis (`--state`) by two real coordinators sharing one worker:
a limit holds across both, a SIGKILLed coordinator's sessions are freed when its lease
expires and a stopped one's at once, and a Redis outage leaves each coordinator to enforce
the limits alone, counted in /metrics, until Redis is back."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from typer.testing import CliRunner

from ishan_tools.cli import app
from tests.harness.redis_server import RedisServer
from tests.harness.waiting import wait_until

from .conftest import Proc, closed_port, healthy_ids
from .test_tenants import CLUSTER_KEY, add_tenant, client

LONG = 3500  # tokens: a stream of several seconds on the tiny model (ctx 4096)
FALLING_BACK = "this coordinator enforces them alone until Redis is back"
BACK = "limits hold across coordinators again"


class Stream:
    """A long stream of a tenant's, read in a thread; a coordinator killed under it cuts it."""

    def __init__(self, coordinator: Proc, key: str) -> None:
        self.status = 0
        self.started = threading.Event()
        body = {"model": "tiny", "prompt": "hold", "stream": True, "max_tokens": LONG}
        body |= {"ignore_eos": True, "temperature": 0}
        headers = {"authorization": f"Bearer {key}"}

        def read() -> None:
            try:
                url = f"{coordinator.url}/v1/completions"
                with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as answer:
                    self.status = answer.status_code
                    for _ in answer.iter_lines():
                        self.started.set()
            except httpx.HTTPError:
                pass
            finally:
                self.started.set()

        threading.Thread(target=read, daemon=True).start()
        assert self.started.wait(30)


class Shared:
    """A redis-server, coordinators keeping the tenants' limits in it, one worker beating
    to every coordinator; `stop` ends them all."""

    def __init__(self, folder: Path, model: Path, tenants: Path) -> None:
        self.folder, self.model, self.tenants = folder, model, tenants
        self.redis = RedisServer(folder / "redis")
        self.procs: list[Proc] = []

    def start(self, lease: str = "2") -> list[Proc]:
        self.redis.start()
        state = ["--state", self.redis.url(), "--state-lease", lease]
        coordinators = [
            self._run("coordinator", "--port", "0", *self.keys(), *state) for _ in range(2)
        ]
        urls = [arg for c in coordinators for arg in ("--coordinator-url", c.url)]
        self._run(
            *("worker", *urls, "--worker-id", "w1", "--port", "0", "--model", str(self.model)),
            *("--model-name", "tiny", "--api-key", CLUSTER_KEY, "--ctx", "4096", "--threads", "1"),
            *("--heartbeat-interval", "0.2"),
        )
        for c in coordinators:
            wait_until(lambda c=c: "w1" in healthy_ids(c.url))
        return coordinators

    def keys(self) -> list[str]:
        return ["--tenants", str(self.tenants), "--api-key", CLUSTER_KEY]

    def _run(self, *args: str) -> Proc:
        proc = Proc(list(args))
        self.procs.append(proc)
        return proc

    def kill_redis(self) -> None:
        assert self.redis.process is not None
        self.redis.process.kill()
        self.redis.process.wait()
        self.redis.process = None

    def stop(self) -> None:
        for proc in reversed(self.procs):  # killed: a stop would wait for the long streams
            proc.popen.kill()
            proc.popen.wait()
        self.redis.stop()


@pytest.fixture
def shared(tmp_path: Path, tiny_model: Path) -> Iterator[Shared]:
    setup = Shared(tmp_path, tiny_model, tmp_path / "tenants.toml")
    try:
        yield setup
    finally:
        setup.stop()


def usage(coordinator: Proc, admin: str, tenant: str = "team-a") -> dict[str, Any]:
    answer = httpx.get(
        f"{coordinator.url}/coordinator/usage", headers={"authorization": f"Bearer {admin}"}
    )
    answer.raise_for_status()
    report: dict[str, Any] = answer.json()["tenants"][tenant]
    return report


def metric(coordinator: Proc, name: str) -> float:
    text = httpx.get(f"{coordinator.url}/metrics").text
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


def listening(coordinator: Proc) -> bool:
    try:
        httpx.get(f"{coordinator.url}/coordinator/health", timeout=2)
    except httpx.TransportError:
        return False
    return True


def refused(coordinator: Proc, key: str) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as limited:
        client(coordinator, key).completions.create(model="tiny", prompt="hi", max_tokens=2)
    return limited.value


def served(coordinator: Proc, key: str) -> bool:
    done = client(coordinator, key).completions.create(model="tiny", prompt="hi", max_tokens=2)
    return done.usage is not None and done.usage.completion_tokens == 2


def test_a_tenants_limits_hold_across_two_coordinators(shared: Shared) -> None:
    key = add_tenant(shared.tenants, "team-a", "--max-sessions", "2")
    thrifty = add_tenant(shared.tenants, "team-b", "--tokens-per-minute", "40")
    admin = add_tenant(shared.tenants, "ops", "--admin")
    a, b = shared.start()
    streams = [Stream(a, key), Stream(b, key)]
    assert [s.status for s in streams] == [200, 200]
    for coordinator in (a, b):  # one session on each: the tenant is at its limit on both
        assert "2 concurrent sessions for this key" in refused(coordinator, key).message
    assert usage(a, admin)["sessions"] == usage(b, admin)["sessions"] == 2
    assert usage(a, admin)["refusals"] == {"sessions": 1}  # each counts its own refusals

    first = client(a, thrifty).completions.create(model="tiny", prompt="hello there", max_tokens=30)
    assert first.usage is not None and first.usage.total_tokens >= 40
    limited = refused(b, thrifty)  # the tokens a's stream used count on b
    assert limited.body["type"] == "tokens"  # type: ignore[index]
    assert f"{first.usage.total_tokens} of 40 tokens per minute" in limited.message
    assert 1 <= int(limited.response.headers["retry-after"]) <= 60


def test_a_killed_coordinators_sessions_are_freed_when_its_lease_expires(shared: Shared) -> None:
    key = add_tenant(shared.tenants, "team-a", "--max-sessions", "2")
    admin = add_tenant(shared.tenants, "ops", "--admin")
    a, b = shared.start(lease="2")
    assert Stream(a, key).status == 200
    assert usage(b, admin)["sessions"] == 1
    a.popen.kill()  # SIGKILL: no goodbye, the lease is no longer renewed
    a.popen.wait()
    wait_until(lambda: usage(b, admin)["sessions"] == 0, timeout=10)
    assert [Stream(b, key).status for _ in range(2)] == [200, 200]  # both sessions again
    assert "2 concurrent sessions" in refused(b, key).message


def test_a_stopped_coordinators_sessions_are_freed_at_once(shared: Shared) -> None:
    key = add_tenant(shared.tenants, "team-a", "--max-sessions", "2")
    admin = add_tenant(shared.tenants, "ops", "--admin")
    a, b = shared.start(lease="60")  # only its goodbye can free its session in time
    assert Stream(a, key).status == 200
    assert usage(b, admin)["sessions"] == 1
    a.signal(signal.SIGINT)  # Ctrl-C twice: stop now, without waiting for the stream
    wait_until(lambda: not listening(a))
    a.signal(signal.SIGINT)
    a.popen.wait(10)
    assert usage(b, admin)["sessions"] == 0
    assert [Stream(b, key).status for _ in range(2)] == [200, 200]


def test_a_redis_outage_falls_back_to_each_coordinator_and_ends_when_redis_is_back(
    shared: Shared,
) -> None:
    key = add_tenant(shared.tenants, "team-a", "--max-sessions", "2")
    a, b = shared.start()
    assert metric(a, "ishan_infer_tenant_state_shared") == 1
    assert Stream(a, key).status == 200  # runs through the outage
    shared.kill_redis()

    assert served(a, key) and served(b, key)  # the service goes on
    for coordinator in (a, b):
        assert metric(coordinator, "ishan_infer_tenant_state_shared") == 0
        assert metric(coordinator, "ishan_infer_tenant_state_fallbacks_total") == 1
    assert Stream(b, key).status == 200  # each coordinator alone: b holds one, a one
    assert served(a, key)  # the second of a's own
    assert a.output.count(FALLING_BACK) == 1  # logged once, however many calls failed

    shared.redis.start()  # the same port, nothing kept
    for coordinator in (a, b):
        wait_until(lambda c=coordinator: metric(c, "ishan_infer_tenant_state_shared") == 1)
        assert coordinator.output.count(BACK) == 1
        assert metric(coordinator, "ishan_infer_tenant_state_fallbacks_total") == 1
    # the streams of the outage are written back: the tenant is at its limit on both again
    for coordinator in (a, b):
        assert "2 concurrent sessions" in refused(coordinator, key).message


runner = CliRunner()


def test_state_needs_tenants_and_a_redis_url(tmp_path: Path) -> None:
    def coordinator(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["infer", "coordinator", "--port", "0", *args])
        return result.exit_code, result.stderr.strip()

    code, error = coordinator("--state", "redis://127.0.0.1:6379/0")
    assert code == 2
    assert error == "error: --state keeps the tenants' limits in Redis: it needs --tenants PATH"
    tenants = tmp_path / "tenants.toml"
    add_tenant(tenants, "team-a")
    state = ("--tenants", str(tenants), "--api-key", CLUSTER_KEY, "--state")
    code, error = coordinator(*state, "http://user:secret@127.0.0.1:6379")
    assert code == 2
    assert error == "error: --state must be a redis://HOST:PORT/DB URL, got 'http://...'"


def test_a_coordinator_starts_while_redis_is_away(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    add_tenant(tenants, "team-a")
    port = closed_port()
    url = f"redis://:s3cret@127.0.0.1:{port}/0"
    keys = ["--tenants", str(tenants), "--api-key", CLUSTER_KEY]
    proc = Proc(["coordinator", "--port", "0", *keys, "--state", url, "--state-lease", "1"])
    try:
        assert metric(proc, "ishan_infer_tenant_state_shared") == 0
        assert metric(proc, "ishan_infer_tenant_state_fallbacks_total") == 1
        (line,) = [x for x in proc.lines if FALLING_BACK in x]
        assert line.startswith(f"tenant limits: no answer from redis://127.0.0.1:{port}/0 (")
        assert "s3cret" not in proc.output
    finally:
        proc.stop()
