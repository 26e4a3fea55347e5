"""Running real `ishan crawl --frontier` worker processes and reading what they left."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from ishan_tools.crawl.merge import merge_crawls
from ishan_tools.crawl.shared.keys import KEY_ROOT
from tests.harness.waiting import wait_until

from .helpers import manifest

ISHAN = str(Path(sys.executable).with_name("ishan"))
# short leases and heartbeats keep the suite fast (a dead worker's URLs return in 1.5 s)
FAST = ["--lease", "1.5", "--heartbeat", "0.3", "--frontier-timeout", "20"]


@dataclass
class Worker:
    name: str
    out: Path
    process: subprocess.Popen[str]
    stdout: str = ""
    stderr: str = ""

    def finish(self, timeout: float = 60) -> int:
        """Wait until it ends by itself; its exit status."""
        try:
            self.stdout, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.stdout, self.stderr = self.process.communicate()
            last = "\n".join(self.stdout.splitlines()[-10:])
            raise AssertionError(
                f"worker {self.name} did not end within {timeout} s; its last events:\n{last}"
                f"\nstderr: {self.stderr[-2000:]}"
            ) from None
        return self.process.returncode

    def stop(self) -> None:
        """Kill it if it still runs (cleanup after a failed test), keeping what it printed."""
        if self.process.returncode is None:  # not waited for yet
            if self.process.poll() is None:
                self.process.kill()
            self.stdout, self.stderr = self.process.communicate()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]
        return [e for e in lines if name is None or e["event"] == name]

    def saved(self) -> int:
        path = self.out / "manifest.jsonl"
        return len(path.read_text().splitlines()) if path.exists() else 0


def start_worker(frontier: str, seeds: list[str], tmp: Path, name: str, *extra: str) -> Worker:
    out = tmp / name
    args = [ISHAN, "crawl", *seeds, "--frontier", frontier, "--worker-id", name, "-o", str(out)]
    args += ["--log-format", "json", "-c", "2", "--depth", "-1", *FAST, *extra]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return Worker(name, out, process)


def run_workers(
    frontier: str, seeds: list[str], tmp: Path, count: int, *extra: str
) -> list[Worker]:
    workers = [start_worker(frontier, seeds, tmp, f"w{i}", *extra) for i in range(count)]
    try:
        for worker in workers:
            assert worker.finish() == 0, worker.stderr
    except AssertionError as failed:
        # one worker that does not end usually waits on another: show them all, and the
        # frontier's own view of what is still queued or leased
        state = frontier_state(frontier)
        for worker in workers:
            worker.stop()
        others = "\n".join(
            f"{w.name} (exit {w.process.returncode}), last events:\n"
            + "\n".join(w.stdout.splitlines()[-10:])
            for w in workers
        )
        raise AssertionError(f"{failed}\n\n{others}\n\n{state}") from None
    return workers


def frontier_state(frontier: str) -> str:
    """Every shared crawl's counters, leases and ready hosts at `frontier`, for a failure."""
    client = redis.Redis.from_url(frontier, decode_responses=True, socket_timeout=2)
    try:
        lines = []
        for opts in client.scan_iter(f"{KEY_ROOT}*:opts"):
            prefix = opts[: -len("opts")]
            lines.append(f"{prefix}stats {client.hgetall(prefix + 'stats')}")
            lines.append(f"{prefix}meta {client.hgetall(prefix + 'meta')}")
            lines.append(f"{prefix}lease {client.zrange(prefix + 'lease', 0, -1, withscores=True)}")
            lines.append(f"{prefix}holder {client.hgetall(prefix + 'holder')}")
            lines.append(f"{prefix}ready {client.zrange(prefix + 'ready', 0, -1, withscores=True)}")
            lines.append(f"{prefix}seeding {client.get(prefix + 'seeding')}")
            workers = client.zrange(prefix + "workers", 0, -1, withscores=True)
            lines.append(f"{prefix}workers (joined, not left) {workers}")
            for host in client.smembers(prefix + "hosts"):
                lines.append(f"{prefix}h:{host} {client.hgetall(prefix + 'h:' + host)}")
        return "\n".join(lines) or "no crawl at the frontier"
    except redis.RedisError as exc:
        return f"the frontier did not answer: {exc}"
    finally:
        client.close()


def wait_for(condition: Any, timeout: float = 30) -> None:
    wait_until(condition, timeout, what="the workers")


def merged(workers: list[Worker], tmp: Path, name: str = "merged") -> dict[str, dict[str, Any]]:
    """Merge the workers' dirs; the merged manifest, each URL's line exactly once."""
    out = tmp / name
    merge_crawls([w.out for w in workers if (w.out / "manifest.jsonl").exists()], out)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    records = manifest(out)
    assert len(records) == len(lines), "a URL has two lines after merge"
    for record in records.values():
        if record["file"]:
            assert (out / record["file"]).is_file()
    return records


def saved_urls(records: dict[str, dict[str, Any]]) -> set[str]:
    return {url for url, record in records.items() if record["file"]}


def leases_held(frontier: str, worker: str) -> int:
    """URLs `worker` holds a lease on now, in every crawl stored at `frontier` (Redis)."""
    client = redis.Redis.from_url(frontier, decode_responses=True, socket_timeout=2)
    try:
        holders = [
            info for key in client.scan_iter(f"{KEY_ROOT}*:holder") for info in client.hvals(key)
        ]
        return sum(1 for info in holders if str(info).split("\t")[0] == worker)
    finally:
        client.close()
