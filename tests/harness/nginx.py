"""A real nginx in front of coordinators, for the tests and the benchmarks.

`Nginx(upstreams, folder)` writes a config (the one docs/infer/coordinators.md shows),
runs `nginx -c CONF -p FOLDER` in the foreground (`daemon off;`) on 127.0.0.1 and a free
port (or on `listen` and `port`, e.g. a network namespace's address, started through
`prefix`, e.g. `ip netns exec NS`), with its pid file, logs and temp files in `folder`, and
stops it on `stop()`.
Every response carries `x-ishan-coordinator`: the upstream that answered it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.harness.ports import free_port
from tests.harness.processes import stop_process
from tests.harness.waiting import WaitTimeout, port_answers, wait_until

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

CONFIG = """\
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;

    upstream ishan_coordinators {{
{servers}
        keepalive 32;
    }}
    server {{
        listen {listen}:{port};
        client_max_body_size 2m;             # the coordinator's own body limit
        location / {{
            proxy_pass http://ishan_coordinators;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;             # or SSE tokens are held back
            proxy_read_timeout {read_timeout}s;          # at least the session TTL
            proxy_send_timeout {read_timeout}s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 2;
            add_header x-ishan-coordinator $upstream_addr always;
        }}
    }}
}}
"""


def config(
    upstreams: list[str],
    folder: Path,
    port: int,
    read_timeout: float = 600,
    listen: str = "127.0.0.1",
) -> str:
    """The nginx config for `upstreams` (host:port each) listening on `listen:port`, logs
    and temp files in `folder`."""
    servers = "\n".join(
        f"        server {address} max_fails=1 fail_timeout=2s;" for address in upstreams
    )
    return CONFIG.format(
        folder=folder,
        servers=servers,
        port=port,
        read_timeout=f"{read_timeout:g}",
        listen=listen,
    )


class Nginx:
    """nginx balancing round robin over `upstreams` (URLs such as http://127.0.0.1:8000)."""

    def __init__(
        self,
        upstreams: list[str],
        folder: Path,
        read_timeout: float = 600,
        *,
        listen: str = "127.0.0.1",
        port: int | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        addresses = [u.split("://", 1)[-1].rstrip("/") for u in upstreams]
        self.port = port or free_port()
        self.conf = folder / "nginx.conf"
        self.conf.write_text(config(addresses, folder, self.port, read_timeout, listen))
        if not Path(NGINX).is_file():
            raise RuntimeError(f"{NGINX} not found: run scripts/test, or apt-get install nginx")
        argv = [NGINX, "-c", str(self.conf), "-p", str(folder), "-e", str(folder / "error.log")]
        self.popen = subprocess.Popen(
            [*prefix, *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = f"http://{listen}:{self.port}"
        try:
            wait_until(
                lambda: port_answers(self.port, listen), 10, what="nginx", process=self.popen
            )
        except WaitTimeout as exc:
            errors = "" if self.popen.poll() is None else self.popen.communicate()[1]
            self.stop()
            raise RuntimeError(f"nginx did not start: {errors or exc}") from None

    def stop(self) -> None:
        stop_process(self.popen)
