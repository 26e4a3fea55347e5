"""`ishan infer serve`: one coordinator (in this process) and N worker processes.

Workers are started as `python -m ishan_tools infer worker ...` in their own process group
(so a terminal's Ctrl-C reaches only the supervisor), each with an explicit share of the
CPU cores, and restarted when they die. On SIGINT or SIGTERM the coordinator stops
accepting connections and lets running streams finish within the grace period; then the
workers are stopped.

The coordinator and its workers share a key (`CoordinatorSettings.cluster_key`): --api-key,
or one generated at start, so heartbeats and the workers' endpoints are never open. With a
tenants file, clients use their tenants' keys, and SIGHUP reloads the file; with --state, the
tenants' limits are kept in Redis, and freed there when the service stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ishan_tools._process import die_with_parent
from ishan_tools._server import CLIENT_SEND_BUFFER, bind, make_server, serve, url_of
from ishan_tools.errors import IshanError
from ishan_tools.infer.config import DEFAULT_WORKER_PORT, ServeSettings, model_name_of
from ishan_tools.infer.coordinator.app import (
    create_app,
    reload_on_hangup,
    shared_quotas,
    warn_if_exposed,
)

# Variables meant for the coordinator or for one worker, by their names and their aliases:
# children must not inherit them (each gets its own flags).
PRIVATE_ENV = (
    "ISHAN_INFER_HOST",
    "ISHAN_INFER_PORT",
    "ISHAN_INFER_MODEL",
    "ISHAN_INFER_MODEL_NAME",
    "ISHAN_INFER_WORKER_ID",
    "ISHAN_INFER_WORKER_URL",
    "ISHAN_INFER_COORDINATOR_URL",
    "HOST",
    "PORT",
    "MODEL_PATH",
    "WORKER_ID",
    "WORKER_URL",
    "COORDINATOR_URL",
)
MAX_RESTART_DELAY = 30.0
POLL_S = 0.2
WORKER_HOST = "127.0.0.1"


@dataclass
class WorkerProcess:
    """One supervised worker: how to build its command line, and its current process."""

    worker_id: str
    argv_for: Callable[[], list[str]]  # called at every start: a default port may be taken
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    restart_at: float = 0.0
    base_delay: float = 1.0
    delay: float = field(default=1.0)
    started_at: float = 0.0

    def start(self, env: dict[str, str]) -> None:
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.argv_for(),
            env=env,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _port_is_free(host: str, port: int) -> bool:
    try:
        bind(host, port).close()
    except IshanError:
        return False
    return True


def worker_port(settings: ServeSettings, index: int) -> int:
    """Worker `index`'s port: `--worker-port` counting up (0: any free one); by default
    3001 counting up, or any free port where that one is taken (another service runs)."""
    if settings.worker_port is None:
        wanted = DEFAULT_WORKER_PORT + index
        return wanted if _port_is_free(WORKER_HOST, wanted) else 0
    return settings.worker_port + index if settings.worker_port else 0


def check_worker_ports(settings: ServeSettings) -> None:
    """Fail at once, naming `--worker-port`, when a port the user asked for is taken."""
    if settings.worker_port:
        for index in range(settings.workers):
            port = settings.worker_port + index
            try:
                bind(WORKER_HOST, port, option="--worker-port (0: free ports)").close()
            except IshanError as exc:
                raise IshanError(f"worker-{index + 1}: {exc}") from exc


def worker_argv(settings: ServeSettings, index: int, coordinator_url: str) -> list[str]:
    """Worker `index`'s command line; it serves model `index` modulo their number."""
    model = settings.model
    served = settings.served()
    name, path = served[index % len(served)]
    port = worker_port(settings, index)
    return [
        sys.executable,
        "-m",
        "ishan_tools",
        "infer",
        "worker",
        "--coordinator-url",
        coordinator_url,
        "--worker-id",
        f"worker-{index + 1}",
        "--host",
        WORKER_HOST,
        "--port",
        str(port),
        "--model",
        str(path),
        *(["--model-name", name] if name else []),
        "--ctx",
        str(model.n_ctx),
        "--batch",
        str(model.n_batch),
        "--threads",
        str(settings.threads_per_worker()),
        "--gpu-layers",
        str(model.n_gpu_layers),
        "--heartbeat-interval",
        str(settings.heartbeat_interval),
        "--max-sessions",
        str(settings.max_sessions),
        *(["--slots", str(settings.slots)] if settings.slots else []),
        *([] if settings.prefix_cache else ["--no-prefix-cache"]),
        "--draft-max",
        str(settings.draft_max),
        *([] if model.flash_attn else ["--no-flash-attn"]),
    ]


def child_env(api_key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV}
    env.pop("ISHAN_INFER_API_KEY", None)
    if api_key:
        env["ISHAN_INFER_API_KEY"] = api_key
    return env


async def _supervise(
    workers: list[WorkerProcess],
    env: dict[str, str],
    server: object,
    say: Callable[[str], None],
    grace: int,
) -> None:
    loop = asyncio.get_running_loop()
    while not getattr(server, "should_exit", False):
        for worker in workers:
            assert worker.process is not None
            code = worker.process.poll()
            if code is None:
                if time.monotonic() - worker.started_at > MAX_RESTART_DELAY:
                    worker.delay = worker.base_delay  # stable again: forget the backoff
                continue
            now = loop.time()
            if worker.restart_at == 0.0:
                worker.restart_at = now + worker.delay
                say(f"{worker.worker_id} exited with code {code}; restarting in {worker.delay:g} s")
            elif now >= worker.restart_at:
                worker.restarts += 1
                worker.restart_at = 0.0
                worker.delay = min(worker.delay * 2, MAX_RESTART_DELAY)
                worker.start(env)
                say(f"{worker.worker_id} restarted (pid {worker.process.pid})")
        await asyncio.sleep(POLL_S)
    say(f"shutting down: no new connections; running streams have {grace} s to finish")


async def run_serve(settings: ServeSettings, say: Callable[[str], None]) -> None:
    """Run the whole service until SIGINT/SIGTERM, then drain and stop it."""
    # heartbeats and worker endpoints are never open: without --api-key, a key of our own
    coordinator = dataclasses.replace(
        settings.coordinator,
        cluster_key=settings.coordinator.api_key or secrets.token_urlsafe(32),
    )
    quotas = shared_quotas(coordinator)
    app = create_app(coordinator, quotas)  # a tenants file that cannot be used stops us here
    sock = bind(coordinator.host, coordinator.port, CLIENT_SEND_BUFFER)
    try:
        check_worker_ports(settings)
    except BaseException:
        sock.close()
        raise
    warn_if_exposed(coordinator)
    reload_on_hangup(app)
    if quotas is not None:
        await quotas.start()
    server = make_server(app, graceful_timeout=settings.grace)
    env = child_env(coordinator.cluster_key)
    url = url_of(sock)
    workers = [
        WorkerProcess(f"worker-{i + 1}", functools.partial(worker_argv, settings, i, url))
        for i in range(settings.workers)
    ]
    if settings.worker_port is None:
        defaults = range(DEFAULT_WORKER_PORT, DEFAULT_WORKER_PORT + settings.workers)
        taken = [str(port) for port in defaults if not _port_is_free(WORKER_HOST, port)]
        if taken:
            say(f"worker port {', '.join(taken)} taken (another service?): using free ports")
    for worker in workers:
        worker.base_delay = worker.delay = settings.restart_delay
        worker.start(env)
    threads = settings.threads_per_worker()
    say(f"started {len(workers)} worker(s), {threads} thread(s) each")
    if settings.models:
        for index, (name, path) in enumerate(settings.served()):
            ids = [w.worker_id for w in workers[index :: len(settings.served())]]
            say(f"model {name or model_name_of(path)}: {', '.join(ids)}")
    supervise = asyncio.create_task(_supervise(workers, env, server, say, settings.grace))
    try:
        await serve(server, sock, lambda url: say(f"coordinator listening on {url}"))
        say("coordinator stopped; stopping workers")
    finally:
        supervise.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervise
        await asyncio.gather(*(asyncio.to_thread(w.stop) for w in workers))
        if quotas is not None:
            await quotas.close()
