"""The crawl benchmarks' fixture sites and prerequisites, shared by bench.crawl and
bench.crawl_distributed (free ports, waiting and stopping come from tests/harness/).

- `nginx(tmp, root, sites)`: nginx serving a docs tree (Debian's python3.11-doc) on `sites`
  ports of 127.0.0.1;
- `python_site(tmp, source, pages)`: a generated site served by a Python subprocess,
  `TREE_SERVER` (/p/N links to /p/20N+1 .. /p/20N+20) or a variant of it;
- `check_prerequisites(...)`: the `ishan` executable, or exit 1 naming what to install.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.harness.ports import free_port
from tests.harness.processes import stop_process
from tests.harness.waiting import WaitTimeout, wait_http

DOCROOT = Path("/usr/share/doc/python3.11/html")

# A site of PAGES pages (argv[1]): /p/N links to /p/20N+1 .. /p/20N+20. Prints its port.
TREE_SERVER = """\
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PAGES = int(sys.argv[1])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY, Nagle and delayed ACKs
    # hold the body some 40 ms on loopback
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/robots.txt":
            body = b"User-agent: *\\nAllow: /\\n"
        else:
            n = int(self.path.rsplit("/", 1)[-1] or 0)
            kids = range(20 * n + 1, min(20 * n + 21, PAGES))
            links = "".join(f'<li><a href="/p/{k}">page {k}</a></li>' for k in kids)
            body = f"<!doctype html><title>{n}</title><ul>{links}</ul>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    request_queue_size = 256

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed crawler hung up
            super().handle_error(request, client_address)


server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

NGINX_CONF = """\
worker_processes {workers};
daemon off;
error_log {tmp}/nginx-error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections {connections}; }}
http {{
  include /etc/nginx/mime.types;
  access_log off;
{sendfile}  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
{servers}
}}
"""
NGINX_SERVER = "  server {{ listen 127.0.0.1:{port}; root {root}; index index.html; }}"

# The Debian package of each tool a benchmark may need.
APT_PACKAGES = {"nginx": "nginx-light", "wget": "wget", "redis-server": "redis-server"}
INSTALL_HINT = """\
missing prerequisites: {missing}
install them with:
    apt-get update && apt-get install -y {packages}
    pip install -e ".[crawl,bench]"
"""


@contextlib.contextmanager
def nginx(
    tmp: Path,
    root: Path,
    sites: int = 1,
    *,
    workers: int = 1,
    connections: int = 1024,
    sendfile: bool = False,
) -> Iterator[list[str]]:
    """nginx serving `root` on `sites` ports of 127.0.0.1; yields each site's URL."""
    ports = [free_port() for _ in range(sites)]
    conf = tmp / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            tmp=tmp,
            workers=workers,
            connections=connections,
            sendfile="  sendfile on;\n" if sendfile else "",
            servers="\n".join(NGINX_SERVER.format(port=port, root=root) for port in ports),
        )
    )
    binary = shutil.which("nginx") or "nginx"
    process = subprocess.Popen([binary, "-c", str(conf), "-p", str(tmp)])
    seeds = [f"http://127.0.0.1:{port}/" for port in ports]
    try:
        for seed in seeds:
            try:
                wait_http(seed, process)
            except WaitTimeout:
                raise SystemExit(f"nginx (see {tmp}/nginx-error.log) did not start") from None
        yield seeds
    finally:
        stop_process(process)


@contextlib.contextmanager
def python_site(tmp: Path, source: str, pages: int) -> Iterator[str]:
    """The site `source` (`TREE_SERVER` or a variant) of `pages` pages; yields its /p/0."""
    script = tmp / f"site-{pages}.py"
    script.write_text(source)
    process = subprocess.Popen(
        [sys.executable, str(script), str(pages)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    try:
        yield f"http://127.0.0.1:{process.stdout.readline().strip()}/p/0"
    finally:
        stop_process(process)


def check_prerequisites(docroot: Path, tools: list[str], modules: list[str]) -> str:
    """The ishan executable beside this Python; exits with install instructions when a tool,
    GNU time, the docs under `docroot` or a Python module of the bench extra is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if not Path("/usr/bin/time").exists():
        missing.append("time (GNU time, for CPU time and peak RSS)")
    if not (docroot / "index.html").exists():
        missing.append(f"python3.11-doc ({docroot}/index.html)")
    for module in modules:
        if importlib.util.find_spec(module) is None:
            missing.append(f"{module} (the bench extra)")
    ishan = Path(sys.executable).with_name("ishan")
    if not ishan.exists():
        missing.append("ishan (pip install -e '.[crawl]')")
    if missing:
        packages = [APT_PACKAGES[tool] for tool in tools] + ["time", "python3.11-doc"]
        sys.stderr.write(
            INSTALL_HINT.format(missing=", ".join(missing), packages=" ".join(packages))
        )
        raise SystemExit(1)
    return str(ishan)
