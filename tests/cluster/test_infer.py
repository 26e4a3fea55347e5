"""Inference under network partitions: nginx on its own host in front of two coordinator
hosts, two worker hosts (each sending heartbeats to both coordinators) and a client host.

- A worker cut from the coordinator carrying its stream, mid-stream: the client's stream ends
  with the error event one --session-ttl after its last token; the worker frees the session
  and drops the dead connection within its --write-timeout; after the heal the worker is back
  in that coordinator's rotation, and nothing is left on either side.
- A coordinator cut from one worker (not from the other coordinator): that coordinator stops
  routing to the worker, the other one goes on routing to it, and after the heal both do.

Every stream runs from the client host through nginx (or straight to a coordinator); the test
process reads the health pages over the bridge, to check what the run left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ishan_tools.infer.coordinator.affinity import owner, prefix_keys
from tests.cluster.conftest import Clock, Figures
from tests.cluster.net import Host, Network
from tests.harness.nginx import Nginx
from tests.harness.waiting import port_answers, wait_until
from tests.infer.tiny_gguf import write_tiny_gguf

COORDINATOR_PORT = 8000
WORKER_PORT = 3001
BALANCER_PORT = 8080
TTL = 3.0  # the coordinators' --session-ttl
WRITE_TIMEOUT = 2.0  # the workers' --write-timeout
BEAT = 0.5  # the workers' --heartbeat-interval: a coordinator drops a worker after 3 missed
LONG = 8000  # tokens: without drafting the tiny model streams them for many seconds
SLACK = 1.5  # seconds of scheduling on a loaded machine
PRIVATE_ENV = ("HOST", "PORT", "MODEL_PATH", "WORKER_ID", "WORKER_URL", "COORDINATOR_URL")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("models") / "tiny-random-llama.gguf")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    env.pop("ISHAN_INFER_API_KEY", None)
    return {**env, "PYTHONUNBUFFERED": "1"}


def get(url: str) -> Any:
    response = httpx.get(url, timeout=5)
    response.raise_for_status()
    return response.json()


@dataclass
class Infer:
    """The hosts and their processes; URLs as the hosts see each other."""

    net: Network
    folder: Path
    model: Path
    coordinators: dict[str, Host] = field(default_factory=dict)
    workers: dict[str, Host] = field(default_factory=dict)
    client: Host | None = None
    balancer: str = ""

    def start(self, host: Host, port: int, args: list[str]) -> None:
        argv = [sys.executable, "-m", "ishan_tools", "infer", *args]
        process = self.net.popen(host, argv, log=self.folder / f"{host.name}.log", env=_env())
        wait_until(
            lambda: port_answers(port, host.address), 60, what=f"{args[0]} on {host}",
            process=process,
        )  # fmt: skip

    def url(self, name: str) -> str:
        host = self.coordinators.get(name) or self.workers[name]
        port = COORDINATOR_PORT if name in self.coordinators else WORKER_PORT
        return f"http://{host.address}:{port}"

    def seen_by(self, coordinator: str) -> dict[str, dict[str, Any]]:
        listing = get(f"{self.url(coordinator)}/coordinator/health/workers")
        return {str(w["worker_id"]): w for w in listing}

    def healthy_at(self, coordinator: str) -> set[str]:
        return {w for w, seen in self.seen_by(coordinator).items() if seen["healthy"]}

    def health(self, worker: str) -> dict[str, Any]:
        health: dict[str, Any] = get(f"{self.url(worker)}/worker/health")
        return health

    def ended(self) -> int:
        """Sessions the workers have ended, however (each generation run once counts 1)."""
        return sum(
            sum(self.health(w)[k] for k in ("completed", "cancelled", "failed"))
            for w in self.workers
        )

    def connections(self, worker: str, coordinator: str) -> list[str]:
        """TCP connections the worker still holds from that coordinator (TIME-WAIT aside)."""
        host, peer = self.workers[worker], self.coordinators[coordinator]
        done = subprocess.run(
            ["ip", "netns", "exec", host.netns, "ss", "-Htan"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return [
            line
            for line in done.stdout.splitlines()
            if f"{host.address}:{WORKER_PORT} " in line
            and f" {peer.address}:" in line
            and not line.startswith(("TIME-WAIT", "LISTEN"))
        ]

    def stream(self, url: str, prompt: str, max_tokens: int) -> Stream:
        assert self.client is not None
        payload = {"prompt": prompt, "model": "m", "max_tokens": max_tokens, "temperature": 0}
        argv = [sys.executable, "-m", "tests.cluster.infer_client", url, json.dumps(payload)]
        return Stream(self.net.popen(self.client, argv, env=_env()))

    def nothing_left(self) -> None:
        """No session, reservation or connection left on any coordinator or worker."""
        for coordinator in self.coordinators:
            for worker, seen in self.seen_by(coordinator).items():
                assert (seen["sessions"], seen["own_sessions"]) == (0, 0), (coordinator, seen)
                assert seen["kv_used_bytes"] == 0, (coordinator, worker, seen)
                assert not self.connections(worker, coordinator), (coordinator, worker)
        for worker in self.workers:
            health = self.health(worker)
            assert (health["sessions"], health["kv_used_bytes"]) == (0, 0), (worker, health)


class Stream:
    """One stream from the client host, its lines read (and timed) in a thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self.coordinator: str | None = None
        self.failure = ""
        self.last_token_at = 0.0
        self.ended_at = 0.0
        self.done = threading.Event()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "coordinator":
                self.coordinator = rest
            elif kind == "data":
                self.events.append(json.loads(rest))
                if not self.events[-1].get("finished"):
                    self.last_token_at = time.monotonic()
            elif kind == "error":
                self.failure = rest
        self.ended_at = time.monotonic()
        self.done.set()

    def wait(self, timeout: float = 60) -> Stream:
        assert self.done.wait(timeout), f"the stream did not end: {''.join(self.stderr)}"
        return self

    @property
    def finished(self) -> bool:
        """Ended with its last event, and no error."""
        last = self.events[-1] if self.events else {}
        return bool(last.get("finished")) and "error" not in last and not self.failure

    @property
    def error_event(self) -> str | None:
        last = self.events[-1] if self.events else {}
        return str(last["error"]) if last.get("finished") and "error" in last else None


class Watch:
    """When (seconds on `clock`) `condition` first held, polled in a thread from now on."""

    def __init__(self, clock: Clock, condition: Callable[[], bool]) -> None:
        self.at: float | None = None
        self.done = threading.Event()

        def poll() -> None:
            while not self.done.is_set():
                if condition():
                    self.at = clock.since()
                    self.done.set()
                time.sleep(0.05)

        threading.Thread(target=poll, daemon=True).start()

    def wait(self, timeout: float) -> float:
        self.done.wait(timeout)
        self.done.set()  # stops the thread
        assert self.at is not None, f"not within {timeout:g} s"
        return self.at


@pytest.fixture
def infer(net: Network, tmp_path: Path, tiny_model: Path) -> Iterator[Infer]:
    cluster = Infer(net, tmp_path, tiny_model)
    balancer = net.add_host("lb")
    for name in ("ca", "cb"):
        cluster.coordinators[name] = net.add_host(name)
    for name in ("w1", "w2"):
        cluster.workers[name] = net.add_host(name)
    cluster.client = net.add_host("client")
    for host in cluster.coordinators.values():
        args = ["coordinator", "--host", host.address, "--port", str(COORDINATOR_PORT)]
        cluster.start(host, COORDINATOR_PORT, [*args, "--session-ttl", str(TTL)])
    beats = [a for c in cluster.coordinators for a in ("--coordinator-url", cluster.url(c))]
    for name, host in cluster.workers.items():
        args = ["worker", "--host", host.address, "--port", str(WORKER_PORT), "--worker-id", name]
        args += ["--model", str(tiny_model), "--ctx", "8192", "--threads", "1", *beats]
        args += ["--draft-max", "0"]  # the long stream still runs when the test is done
        args += ["--heartbeat-interval", str(BEAT), "--write-timeout", str(WRITE_TIMEOUT)]
        cluster.start(host, WORKER_PORT, args)
    nginx = Nginx(
        [cluster.url(c) for c in cluster.coordinators],
        tmp_path / "nginx",
        listen=balancer.address,
        port=BALANCER_PORT,
        prefix=["ip", "netns", "exec", balancer.netns],
    )
    balancer.processes.append(nginx.popen)  # stopped with the network, pass or fail
    cluster.balancer = nginx.url
    wait_until(lambda: all(cluster.healthy_at(c) == {"w1", "w2"} for c in cluster.coordinators))
    yield cluster


def owned_by(worker: str, count: int) -> list[str]:
    """Prompts of more than one block whose leading text `worker` owns among w1 and w2."""
    text = "The shop opens at nine and closes at six; maps and gift cards are sold. " * 5
    prompts = (f"{i:03d} {text}" for i in range(1000))
    return [p for p in prompts if owner(prefix_keys(p), ["w1", "w2"]) == worker][:count]


def test_a_worker_cut_from_its_coordinator_mid_stream(infer: Infer) -> None:
    net = infer.net
    stream = infer.stream(infer.balancer, "hello world", LONG)
    wait_until(lambda: len(stream.events) >= 20 or stream.done.is_set(), 30)
    assert not stream.done.is_set(), (stream.events[-1:], stream.failure, stream.stderr)
    by_address = {f"{h.address}:{COORDINATOR_PORT}": n for n, h in infer.coordinators.items()}
    coordinator = by_address[str(stream.coordinator)]
    worker = next(w for w in infer.workers if infer.health(w)["sessions"] == 1)
    assert infer.health(worker)["cancelled"] == 0

    net.cut(infer.workers[worker], infer.coordinators[coordinator])
    clock = Clock()
    assert not stream.done.is_set(), "the stream ended before the cut"
    freed = Watch(clock, lambda: infer.health(worker)["sessions"] == 0)
    dropped = Watch(clock, lambda: not infer.connections(worker, coordinator))
    stream.wait(TTL + 10)
    error_after = stream.ended_at - stream.last_token_at  # the coordinator's idle time
    assert stream.error_event is not None and "session expired" in stream.error_event
    assert not stream.failure and len(stream.events) < LONG
    assert error_after <= TTL + SLACK, error_after

    freed_after, dropped_after = freed.wait(WRITE_TIMEOUT + 10), dropped.wait(10)
    assert freed_after <= WRITE_TIMEOUT + SLACK, freed_after  # the worker's own bound
    assert dropped_after <= WRITE_TIMEOUT + SLACK, dropped_after  # its connection too
    assert infer.health(worker)["kv_used_bytes"] == 0
    assert infer.health(worker)["cancelled"] == 1  # stopped, not generated to its end
    assert worker not in infer.healthy_at(coordinator)  # no heartbeat got through
    other = next(c for c in infer.coordinators if c != coordinator)
    assert worker in infer.healthy_at(other)

    net.heal(infer.workers[worker], infer.coordinators[coordinator])
    clock.mark()
    wait_until(lambda: worker in infer.healthy_at(coordinator), 10, interval=0.05)
    recovery = clock.since()
    before = infer.health(worker)["completed"]
    streams = [stream]
    for prompt in owned_by(worker, 2):  # back in that coordinator's rotation
        streams.append(infer.stream(infer.url(coordinator), prompt, 8).wait())
        assert streams[-1].finished, streams[-1].events[-1:]
    assert infer.health(worker)["completed"] == before + 2
    infer.nothing_left()

    lost = sum(1 for s in streams if not (s.finished or s.error_event))
    figures = Figures(
        "infer: a worker cut from its coordinator mid-stream",
        faults=net.faults,
        items=len(streams),
        item_kind="streams",
        lost=lost,  # the cut stream ended with the error event in time: not lost
        twice=infer.ended() - len(streams),
        recovery_s=recovery,
        notes={
            "error event after last token": f"{error_after:.1f} s (ttl {TTL:g} s)",
            "worker session freed": f"{freed_after:.1f} s after the cut",
            "connection dropped": f"{dropped_after:.1f} s (write timeout {WRITE_TIMEOUT:g} s)",
        },
    )
    figures.show()
    assert (figures.lost, figures.twice) == (0, 0), figures.line()


def test_a_coordinator_cut_from_one_worker_routes_around_it_alone(infer: Infer) -> None:
    net = infer.net
    net.cut(infer.coordinators["ca"], infer.workers["w2"])
    wait_until(lambda: infer.healthy_at("ca") == {"w1"}, 3 * BEAT + 5, interval=0.05)
    assert infer.healthy_at("cb") == {"w1", "w2"}

    streams: list[Stream] = []
    served: dict[str, list[str]] = {"ca": [], "cb": []}
    by_address = {f"{h.address}:{COORDINATOR_PORT}": n for n, h in infer.coordinators.items()}
    for prompt in owned_by("w2", 6):  # each would go to w2 wherever w2 is in rotation
        done = {w: infer.health(w)["completed"] for w in infer.workers}
        streams.append(infer.stream(infer.balancer, prompt, 8).wait())
        assert streams[-1].finished, streams[-1].events[-1:]
        worker = next(w for w in infer.workers if infer.health(w)["completed"] > done[w])
        served[by_address[str(streams[-1].coordinator)]].append(worker)
    assert served["ca"] and set(served["ca"]) == {"w1"}, served  # avoided at ca only
    assert served["cb"] and set(served["cb"]) == {"w2"}, served  # cb still reaches it

    net.heal(infer.coordinators["ca"], infer.workers["w2"])
    clock = Clock()
    wait_until(lambda: infer.healthy_at("ca") == {"w1", "w2"}, 10, interval=0.05)
    recovery = clock.since()
    before = infer.health("w2")["completed"]
    streams.append(infer.stream(infer.url("ca"), owned_by("w2", 7)[6], 8).wait())
    assert streams[-1].finished
    assert infer.health("w2")["completed"] == before + 1  # ca routes to w2 again
    infer.nothing_left()

    figures = Figures(
        "infer: a coordinator cut from one worker",
        faults=net.faults,
        items=len(streams),
        item_kind="streams",
        lost=sum(1 for s in streams if not s.finished),
        twice=infer.ended() - len(streams),
        recovery_s=recovery,
        notes={"served through ca": " ".join(served["ca"]), "through cb": " ".join(served["cb"])},
    )
    figures.show()
    assert (figures.lost, figures.twice) == (0, 0), figures.line()
