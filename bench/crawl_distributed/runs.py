"""One crawl by one or more processes, measured: pages, seconds, CPU, peak RSS, Redis memory.

`Redis` is the benchmark's own redis-server (the harness's `RedisServer`, persistence off)
with a used_memory sampler; `Timed` runs a process under GNU time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    """One crawl by one or more processes."""

    pages: int
    seconds: float  # launch to the last page saved
    cpu_s: float  # user + sys of every worker
    rss_mb: float  # the largest worker's peak
    redis_bytes: int = 0  # peak used_memory minus before
    seen: int = 0  # URLs in the dedupe set
    dedupe_bytes: int = 0
    urls: set[str] = field(default_factory=set)

    @property
    def rate(self) -> float:
        return self.pages / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / max(self.pages, 1)


class Redis:
    """A redis-server of the benchmark's own (no persistence) and a used_memory sampler."""

    def __init__(self, tmp: Path) -> None:
        import redis  # the bench extra: check_prerequisites has said so before

        from tests.harness.redis_server import RedisServer

        self.server = RedisServer(tmp / "redis")
        try:
            self.server.start()
        except RuntimeError as error:
            raise SystemExit(str(error)) from None
        self.port = self.server.port
        self.client = redis.Redis(port=self.port, decode_responses=True)
        self.url = self.server.url(0)
        self._peak = 0
        self._sampling = False

    def used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    @contextlib.contextmanager
    def sampled(self) -> Iterator[dict[str, int]]:
        """Yields {'before', 'peak'}: used_memory before the block, its peak during it."""
        self.client.flushall()
        figures = {"before": self.used(), "peak": 0}
        self._sampling = True

        def sample() -> None:
            while self._sampling:
                figures["peak"] = max(figures["peak"], self.used())
                time.sleep(0.02)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield figures
        finally:
            self._sampling = False
            thread.join()
            figures["peak"] = max(figures["peak"], self.used())

    def bytes_of(self, pattern: str) -> int:
        return sum(
            int(self.client.memory_usage(key) or 0) for key in self.client.scan_iter(pattern)
        )

    def stop(self) -> None:
        self.server.stop()


class Timed:
    """A process under GNU time: its CPU seconds and peak RSS once it ended."""

    def __init__(self, cmd: list[str], tmp: Path) -> None:
        self.report = tempfile.NamedTemporaryFile("r", dir=tmp, suffix=".time")  # noqa: SIM115
        timed = ["/usr/bin/time", "-q", "-f", "%U %S %M", "-o", self.report.name, *cmd]
        self.process = subprocess.Popen(
            timed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def wait(self, timeout: float = 900) -> tuple[float, float]:
        """(CPU seconds, peak RSS MB); (0, 0) for a process that was killed."""
        self.process.wait(timeout=timeout)
        fields = self.report.read().split()
        if len(fields) < 3 or not fields[-1].isdigit():
            return 0.0, 0.0
        return float(fields[-3]) + float(fields[-2]), int(fields[-1]) / 1024

    def kill(self) -> None:
        """SIGKILL the crawler (and GNU time: the session of both)."""
        os.killpg(self.process.pid, signal.SIGKILL)


def wait_lines(path: Path, count: int, proc: Timed) -> None:
    """Until `path` has `count` lines (or its writer ended)."""
    while proc.process.poll() is None:
        if path.exists() and len(path.read_bytes().splitlines()) >= count:
            return
        time.sleep(0.02)


def finish(procs: list[Timed], launched: float, outputs: list[Path]) -> tuple[float, float, float]:
    """Wait for every process; (seconds from launch to the last save, CPU s, largest RSS)."""
    cpu, rss = 0.0, 0.0
    for proc in procs:
        seconds, peak = proc.wait()
        cpu, rss = cpu + seconds, max(rss, peak)
    last = max((p.stat().st_mtime for p in outputs if p.exists()), default=time.time())
    return max(last - launched, 1e-3), cpu, rss


def ishan_urls(dirs: list[Path]) -> set[str]:
    urls = set()
    for path in dirs:
        manifest = path / "manifest.jsonl"
        if manifest.exists():
            for line in manifest.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("file"):
                        urls.add(record["url"])
    return urls


def run_ishan(
    ishan: str,
    seeds: list[str],
    work: Path,
    workers: int,
    redis: Redis | None,
    extra: list[str],
    kill_after: int = 0,
) -> Run:
    """One process (no redis) or `workers` workers on a fresh frontier."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base = [ishan, "crawl", *seeds, "--depth", "-1", "-q", *extra]
    memory = redis.sampled() if redis is not None else contextlib.nullcontext({})
    with memory as figures:
        launched = time.time()
        dirs = [work / f"w{i}" for i in range(workers)]
        procs = []
        for i, out in enumerate(dirs):
            shared = ["--frontier", redis.url, "--worker-id", f"w{i}"] if redis else []
            procs.append(Timed([*base, "-o", str(out), *shared], work))
        if kill_after:
            wait_lines(dirs[0] / "manifest.jsonl", kill_after, procs[0])
            procs[0].kill()
        seconds, cpu, rss = finish(procs, launched, [d / "manifest.jsonl" for d in dirs])
        seen = 0
        dedupe = 0
        if redis is not None:
            meta = next(redis.client.scan_iter("ishan:crawl:*:meta"))
            seen = int(redis.client.hget(meta, "n") or 0)
            dedupe = redis.bytes_of(meta[: -len("meta")] + "seen:*")
    urls = ishan_urls(dirs)
    return Run(
        pages=len(urls),
        seconds=seconds,
        cpu_s=cpu,
        rss_mb=rss,
        redis_bytes=figures.get("peak", 0) - figures.get("before", 0),
        seen=seen,
        dedupe_bytes=dedupe,
        urls=urls,
    )
