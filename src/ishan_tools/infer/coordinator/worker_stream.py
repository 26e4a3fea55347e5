"""A lean HTTP client for the coordinator's one hot path: a worker's token stream.

Every token crosses this reader, so it skips the general-purpose HTTP stack (whose
per-read bookkeeping costs more CPU than the token itself on a small machine): one plain
connection per session, an HTTP/1.0 request, then lines read straight off the socket,
close-delimited or chunked, whichever the server chose.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024


class WorkerStream:
    """An open streaming response: `status`, `headers`, then `readline()` until None."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.status = status
        self.headers: dict[str, str] = {}
        self._chunked = False
        self._chunk_left = 0
        self._buffer = b""
        self._eof = False
        self.last_read = time.monotonic()  # when the body last brought data
        self._watchdog: asyncio.TimerHandle | None = None

    def expire_after(self, idle_s: float) -> None:
        """From now on, a read raises TimeoutError once the body has brought no data for
        `idle_s` seconds. One timer that re-arms itself, not one per read."""
        loop = asyncio.get_running_loop()

        def check() -> None:
            due = self.last_read + idle_s
            now = time.monotonic()
            if now >= due:
                self.reader.set_exception(TimeoutError(f"no data for {idle_s:g} s"))
                self._watchdog = None
            else:
                self._watchdog = loop.call_later(due - now, check)

        self.last_read = time.monotonic()
        self._watchdog = loop.call_later(idle_s, check)

    @classmethod
    async def post(
        cls, url: str, body: object, headers: dict[str, str], connect_timeout: float
    ) -> WorkerStream:
        """POST `body` as JSON and read the status line and headers (raises OSError)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OSError(f"unsupported worker URL {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(
                parts.hostname, port, ssl=parts.scheme == "https" or None, limit=MAX_HEADER_BYTES
            )
        payload = json.dumps(body).encode()
        lines = [
            f"POST {parts.path or '/'} HTTP/1.0",
            f"host: {parts.netloc}",
            "content-type: application/json",
            f"content-length: {len(payload)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        try:
            status_line = await reader.readline()
            fields = status_line.split(b" ", 2)
            if len(fields) < 2 or not fields[0].startswith(b"HTTP/"):
                raise OSError(f"not an HTTP response: {status_line[:60]!r}")
            stream = cls(reader, writer, int(fields[1]))
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                stream.headers[name.strip().lower()] = value.strip()
        except (ValueError, asyncio.LimitOverrunError) as exc:
            writer.close()
            raise OSError(f"bad response from {url}: {exc}") from exc
        except BaseException:
            writer.close()
            raise
        stream._chunked = "chunked" in stream.headers.get("transfer-encoding", "")
        return stream

    async def _more(self) -> bool:
        """Append the next piece of the body to the buffer; False at its end."""
        if self._eof:
            return False
        if not self._chunked:
            data = await self.reader.read(65536)
            self.last_read = time.monotonic()
            self._eof = not data
            self._buffer += data
            return bool(data)
        if self._chunk_left == 0:
            size_line = await self.reader.readline()
            if not size_line:
                raise ConnectionResetError("the worker closed the stream mid-chunk")
            self._chunk_left = int(size_line.split(b";")[0].strip() or b"0", 16)
            if self._chunk_left == 0:
                self._eof = True
                return False
        data = await self.reader.read(self._chunk_left)
        self.last_read = time.monotonic()
        if not data:
            raise ConnectionResetError("the worker closed the stream mid-chunk")
        self._chunk_left -= len(data)
        self._buffer += data
        if self._chunk_left == 0:
            await self.reader.readexactly(2)  # the CRLF after each chunk
        return True

    async def readline(self) -> str | None:
        """The next body line without its newline; None once the body has ended cleanly."""
        while b"\n" not in self._buffer:
            if not await self._more():
                if self._buffer:
                    line, self._buffer = self._buffer, b""
                    return line.decode()
                return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def read_all(self) -> str:
        """The rest of the body (for error responses)."""
        while await self._more():
            pass
        text, self._buffer = self._buffer, b""
        return text.decode(errors="replace")

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
