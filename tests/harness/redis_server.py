"""A real `redis-server` (Debian's package) on a free 127.0.0.1 port, for tests and benchmarks.

Persistence is off unless asked (`appendonly=True`, for the restart test). `pause`/`resume`
send SIGSTOP/SIGCONT (a blip); `stop`/`start` restart it on the same port and data dir.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import redis

from tests.harness.ports import free_port
from tests.harness.processes import stop_process
from tests.harness.waiting import WaitTimeout, wait_until


class RedisServer:
    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: run scripts/test, which installs it, or "
                "apt-get install redis-server"
            )
        self.binary = binary
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.workdir), "--save", "", "--daemonize", "no"]
        args += ["--appendonly", "yes" if self.appendonly else "no", "--loglevel", "warning"]
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=log)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                return False

        try:
            wait_until(answers, 10, what="redis-server", process=self.process)
        except WaitTimeout:
            message = f"redis-server did not start: {self.workdir}/redis.log"
            raise RuntimeError(message) from None
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits."""
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
