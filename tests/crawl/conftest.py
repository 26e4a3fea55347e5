"""A real HTTP server on 127.0.0.1 (port 0) serving `fixtures/crawl/site/` plus hostile routes.

`serve(address)` starts one on another loopback address (127.0.0.2, ...), for crawls of
several sites at once; `sites` starts three.

The server counts every request by path and query (`hits`), so tests can check what the
crawler really fetched. Dynamic routes: redirects (to a page, in a loop, to another host),
fixed statuses, a 503 and a 429 that succeed on the second try (Retry-After: 1), a slow page,
a huge page, a body cut short, binary served as HTML, mixed encodings, two link traps, an
ETag page that answers 304, and `/dyn/` pages whose number, delay, failures and extra links
tests set.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import mimetypes
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import redis

from tests.harness.redis_server import RedisServer
from tests.harness.waiting import wait_port

SITE = Path(__file__).resolve().parents[2] / "fixtures" / "crawl" / "site"
_SUBSTITUTED = {".html", ".txt", ".xml"}


class FixtureServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # several worker processes connect at once

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (timeout, body cap) is expected here; stay quiet."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        super().__init__((address, 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.dyn_pages = 20
        self.dyn_delay = 0.0
        self.dyn_failures = 0  # the next this-many /dyn/ requests answer 500
        self.dyn_fail_until = 0.0  # /dyn/ pages requested before this monotonic time fail too
        self.dyn_status = 500
        self.dyn_links: list[str] = []  # more links on the /dyn/ index (other sites, say)
        self.moved_to = "/"  # where /redirect/moved sends (another site, say)
        self.slow_seconds = 3.0
        self.robots: str | None = None  # replaces robots.txt when set
        self.headers_seen: dict[str, dict[str, str]] = {}  # request headers, by path
        self.dyn_times: list[float] = []  # monotonic arrival time of each /dyn/ page request
        self.dyn_active = 0
        self.dyn_peak_active = 0  # most /dyn/ page requests in progress at once

    @property
    def origin(self) -> str:
        return f"http://{self.netloc}"

    @property
    def netloc(self) -> str:
        return f"{self.server_address[0]}:{self.server_address[1]}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits[path]

    def dyn_hits(self) -> Counter[str]:
        with self.lock:
            return Counter({k: v for k, v in self.hits.items() if k.startswith("/dyn/p")})


class _Handler(BaseHTTPRequestHandler):
    server: FixtureServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(
        self, status: int, body: bytes = b"", ctype: str = "text/html", **headers: str
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _first_hit(self) -> bool:
        return self.server.count(self.path) == 1

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.hits[self.path] += 1
            server.headers_seen[self.path] = dict(self.headers.items())
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        route = getattr(self, "_route_" + path.strip("/").split("/")[0].replace(".", "_"), None)
        if route is not None and route(path, query) is not False:
            return
        self._static(path)

    def _static(self, path: str) -> None:
        if path == "/robots.txt" and self.server.robots is not None:
            self._send(200, self.server.robots.encode(), "text/plain")
            return
        file = SITE / path.lstrip("/")
        if file.is_dir():
            file = file / "index.html"
        if not file.resolve().is_relative_to(SITE) or not file.is_file():
            self._send(404, b"<h1>not found</h1>")
            return
        body = file.read_bytes()
        if file.suffix in _SUBSTITUTED:
            host = self.server.netloc.encode()
            body = body.replace(b"{HOST}", host).replace(b"{ORIGIN}", b"http://" + host)
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        self._send(200, body, ctype)

    # -- hostile routes -----------------------------------------------------------------------

    def _route_redirect(self, path: str, query: dict[str, list[str]]) -> None:
        targets = {
            "/redirect/about": "/about.html",
            "/redirect/loop-a": "/redirect/loop-b",
            "/redirect/loop-b": "/redirect/loop-a",
            "/redirect/offsite": "http://example.invalid/",
            "/redirect/to-ip": self.server.url("/"),
            "/redirect/moved": self.server.moved_to,
        }
        self._send(301, b"", Location=targets.get(path, "/"))

    def _route_status(self, path: str, query: dict[str, list[str]]) -> None:
        status = int(path.rsplit("/", 1)[-1])
        self._send(status, f"<h1>{status}</h1>".encode())

    def _route_flaky(self, path: str, query: dict[str, list[str]]) -> None:
        if self._first_hit():
            self._send(503, b"busy", Retry_After="1")
        else:
            self._send(200, b"<p>flaky page, second try</p>")

    def _route_ratelimited(self, path: str, query: dict[str, list[str]]) -> None:
        if self._first_hit():
            self._send(429, b"slow down", Retry_After="1")
        else:
            self._send(200, b"<p>rate-limited page, second try</p>")

    def _route_slow(self, path: str, query: dict[str, list[str]]) -> None:
        time.sleep(self.server.slow_seconds)
        self._send(200, b"<p>slow</p>")

    def _route_huge(self, path: str, query: dict[str, list[str]]) -> None:
        self._send(200, b"<p>" + b"x" * 2_000_000 + b"</p>")

    def _route_truncated(self, path: str, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", "5000")
        self.end_headers()
        self.wfile.write(b"<p>only the start" + b"." * 100)
        self.close_connection = True

    def _route_reset(self, path: str, query: dict[str, list[str]]) -> None:
        """Drop the connection without an answer (a reset, as the client sees it)."""
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _route_binary_html(self, path: str, query: dict[str, list[str]]) -> None:
        self._send(200, bytes(range(256)) * 8)

    def _route_mixed_html(self, path: str, query: dict[str, list[str]]) -> None:
        body = "<p>caf\u00e9 </p>".encode() + b"<p>caf\xe9 \xff\xfe</p><a href='/about.html'>a</a>"
        self._send(200, body, "text/html; charset=utf-8")

    def _route_trap(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/trap/calendar":
            month = int(query.get("month", ["1"])[0])
            body = f"<a href='?month={month + 1}'>next</a><a href='?month={month - 1}'>prev</a>"
        else:
            grown = query.get("q", ["a"])[0] + "abcdefghijklmnopqrst"
            body = f"<a href='/trap/grow?q={grown}'>more</a>"
        self._send(200, body.encode())

    def _route_sitemap_xml_gz(self, path: str, query: dict[str, list[str]]) -> None:
        urls = "".join(f"<url><loc>{self.server.url(p)}</loc></url>" for p in ("/orphan.html",))
        xml = f'<?xml version="1.0"?><urlset>{urls}</urlset>'.encode()
        self._send(200, gzip.compress(xml), "application/gzip")

    def _route_etag_html(self, path: str, query: dict[str, list[str]]) -> None:
        if self.headers.get("If-None-Match") == '"v1"':
            self._send(304, b"", ETag='"v1"')
        else:
            self._send(200, b"<p>tagged</p><a href='/about.html'>about</a>", ETag='"v1"')

    def _route_dyn(self, path: str, query: dict[str, list[str]]) -> None:
        server = self.server
        if path in ("/dyn", "/dyn/"):
            links = "".join(f"<a href='/dyn/p{i}'>p{i}</a>" for i in range(server.dyn_pages))
            links += "".join(f"<a href='{href}'>more</a>" for href in server.dyn_links)
            self._send(200, links.encode())
            return
        with server.lock:
            now = time.monotonic()
            server.dyn_times.append(now)
            server.dyn_active += 1
            server.dyn_peak_active = max(server.dyn_peak_active, server.dyn_active)
            failing = server.dyn_failures > 0 or now < server.dyn_fail_until
            server.dyn_failures -= 1 if server.dyn_failures > 0 else 0
        if server.dyn_delay:
            time.sleep(server.dyn_delay)
        with server.lock:
            server.dyn_active -= 1
        if failing:
            self._send(server.dyn_status, b"<p>failing</p>")
        else:
            self._send(200, f"<p>page {path}</p>".encode())


@contextlib.contextmanager
def serve(address: str = "127.0.0.1") -> Iterator[FixtureServer]:
    """Start a fixture server on `address`, wait until it answers, stop it afterwards."""
    server = FixtureServer(address)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    wait_port(server.server_address[1], address)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def site() -> Iterator[FixtureServer]:
    with serve() as server:
        yield server


@pytest.fixture
def sites() -> Iterator[list[FixtureServer]]:
    """Three fixture sites, on 127.0.0.1, 127.0.0.2 and 127.0.0.3."""
    with serve("127.0.0.1") as one, serve("127.0.0.2") as two, serve("127.0.0.3") as three:
        yield [one, two, three]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session, persistence off."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_frontier(redis_server: RedisServer) -> Callable[[], str]:
    """A factory of empty Redis databases of the session server, as frontier URLs."""

    def fresh() -> str:
        db = next(_DATABASES)
        redis.Redis(port=redis_server.port, db=db).flushdb()
        return redis_server.url(db)

    return fresh


@pytest.fixture
def frontier(fresh_frontier: Callable[[], str]) -> str:
    """A fresh database of the session's redis-server, as a --frontier URL."""
    return fresh_frontier()


_DATABASES = itertools.cycle(range(1, 16))
