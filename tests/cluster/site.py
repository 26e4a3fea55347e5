"""A small site for the cluster tests, run as a process inside a host:

    python -m tests.cluster.site ADDRESS PAGES DELAY

It serves `/` (links to /p0 ... /pN-1) and each page /pI (links to the next two pages), each
after DELAY seconds, on ADDRESS port 8000, and counts every GET; `/_hits` (linked from
nowhere) answers the counts as JSON, so a test reads how often each page was fetched.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 8000


class Site(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: str, pages: int, delay: float) -> None:
        super().__init__((address, PORT), _Handler)
        self.pages, self.delay = pages, delay
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client cut off mid-answer is what these tests do: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: Site
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        site = self.server
        if self.path == "/_hits":
            with site.lock:
                counts = json.dumps(dict(site.hits)).encode()
            self._send(200, counts, "application/json")
            return
        with site.lock:
            site.hits[self.path] += 1
        if self.path == "/":
            time.sleep(site.delay)
            body = "".join(f"<a href='/p{i}'>p{i}</a>" for i in range(site.pages))
        elif self.path.startswith("/p") and self.path[2:].isdigit():
            number = int(self.path[2:])
            time.sleep(site.delay)
            links = [f"/p{(number + step) % site.pages}" for step in (1, 2)]
            body = f"<p>page {number}</p>" + "".join(f"<a href='{h}'>x</a>" for h in links)
        else:
            self._send(404, b"<p>not found</p>", "text/html")
            return
        self._send(200, body.encode(), "text/html")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    address, pages, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    site = Site(address, pages, delay)
    print(f"site listening on {address}:{PORT}", flush=True)
    site.serve_forever()


if __name__ == "__main__":
    main()
