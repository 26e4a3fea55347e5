"""`ishan infer serve` as a user runs it: supervision, restarts, graceful drain, `ask`."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from .conftest import Proc, closed_port, healthy_ids, ishan, wait_until, workers_of
from .test_service import body, infer

LONG = 1500


def serve(model: Path, *extra: str, env: dict[str, str] | None = None) -> Proc:
    return Proc(
        [
            "serve",
            "--worker-port",
            "0",
            "--model",
            str(model),
            "--ctx",
            "8192",
            "--heartbeat-interval",
            "0.2",
            "--threads",
            "1",
            *extra,
        ],
        env=env,
    )


def worker_pids(url: str) -> dict[str, int]:
    pids = {}
    for w in workers_of(url):
        if w["healthy"]:
            pids[str(w["worker_id"])] = httpx.get(f"{w['url']}/worker/health").json()["pid"]
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_restarts_a_dead_worker_and_keeps_serving(tiny_model: Path) -> None:
    proc = serve(tiny_model, "--port", "0", "--workers", "2")
    try:
        wait_until(lambda: healthy_ids(proc.url) == {"worker-1", "worker-2"}, timeout=60)
        assert "started 2 worker(s), 1 thread(s) each" in proc.output
        assert "coordinator listening on" in proc.output
        old = worker_pids(proc.url)
        os.kill(old["worker-1"], signal.SIGKILL)
        with infer(proc.url, body(max_tokens=4)) as events:  # worker-2 (or a retry) serves it
            assert list(events)[-1] == {"token": "", "finished": True}
        wait_until(lambda: "worker-1 restarted" in proc.output, timeout=30)
        wait_until(lambda: worker_pids(proc.url).get("worker-1") not in (None, old["worker-1"]))
        assert "worker-1 exited with code -9" in proc.output
    finally:
        proc.stop()


def test_sigterm_lets_running_streams_finish_then_stops_everything(tiny_model: Path) -> None:
    proc = serve(tiny_model, env={"PORT": "0", "HOST": "127.0.0.1"})
    try:
        wait_until(lambda: healthy_ids(proc.url) == {"worker-1"}, timeout=60)
        [pid] = worker_pids(proc.url).values()
        with infer(proc.url, body(max_tokens=LONG)) as events:
            first = next(events)
            proc.signal(signal.SIGTERM)
            received = [first, *events]
        assert received[-1] == {"token": "", "finished": True}
        assert len(received) == LONG + 1
        assert proc.popen.wait(30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{proc.url}/coordinator/health")
        wait_until(lambda: not alive(pid))
        assert "shutting down: no new connections" in proc.output
        assert "stopping workers" in proc.output
    finally:
        proc.stop()


def test_ask_streams_from_a_running_service(tiny_model: Path) -> None:
    proc = serve(tiny_model, "--port", "0")
    try:
        wait_until(lambda: healthy_ids(proc.url) == {"worker-1"}, timeout=60)
        done = ishan(
            "infer", "ask", "hello", "--url", proc.url, "--max-tokens", "12", "--temperature", "0"
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip()
        assert "12 tokens" in done.stderr and "tok/s" in done.stderr
        assert "first token after" in done.stderr
    finally:
        proc.stop()


def test_ask_without_a_coordinator_says_how_to_start_one() -> None:
    done = ishan("infer", "ask", "hi", "--url", f"http://127.0.0.1:{closed_port()}")
    assert done.returncode == 1
    assert "cannot reach the coordinator" in done.stderr
    assert "ishan infer serve" in done.stderr


def test_two_services_run_side_by_side_on_the_default_worker_ports(tiny_model: Path) -> None:
    def start() -> Proc:
        return Proc(["serve", "--port", "0", "--model", str(tiny_model), "--ctx", "512",
                     "--heartbeat-interval", "0.2", "--threads", "1"])  # fmt: skip

    first = start()
    try:
        wait_until(lambda: healthy_ids(first.url) == {"worker-1"}, timeout=60)
        second = start()  # the default worker port is the first service's now
        try:
            wait_until(lambda: healthy_ids(second.url) == {"worker-1"}, timeout=60)
            for proc in (first, second):
                with infer(proc.url, body(max_tokens=3)) as events:
                    assert list(events)[-1] == {"token": "", "finished": True}
            [one], [two] = workers_of(first.url), workers_of(second.url)
            assert one["url"] != two["url"]
            assert "restarting" not in first.output + second.output
            assert "taken (another service?): using free ports" in second.output
        finally:
            second.stop()
    finally:
        first.stop()


def test_a_taken_worker_port_that_was_asked_for_fails_fast_naming_the_option(
    tiny_model: Path,
) -> None:
    import socket

    from typer.testing import CliRunner

    from ishan_tools.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(
            app,
            ["infer", "serve", "--port", "0", "--worker-port", port, "--model", str(tiny_model)],
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--worker-port" in result.stderr and "worker-1" in result.stderr


def test_serve_keys_heartbeats_and_workers_even_without_an_api_key(tiny_model: Path) -> None:
    proc = serve(tiny_model, "--port", "0")
    try:
        wait_until(lambda: healthy_ids(proc.url) == {"worker-1"}, timeout=60)
        worker_url = str(workers_of(proc.url)[0]["url"])
        beat = {"worker_id": "intruder", "url": "http://127.0.0.1:9", "model": "m"}
        assert httpx.post(f"{proc.url}/coordinator/heartbeat", json=beat).status_code == 401
        direct = httpx.post(f"{worker_url}/worker/generate", json={"prompt": "hi"}, timeout=10)
        assert direct.status_code == 401
        with infer(proc.url, body(max_tokens=4)) as events:  # clients need no key
            assert list(events)[-1] == {"token": "", "finished": True}
        assert healthy_ids(proc.url) == {"worker-1"}
    finally:
        proc.stop()
