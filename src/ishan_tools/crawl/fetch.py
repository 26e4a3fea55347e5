"""One HTTP fetch: redirects re-checked hop by hop, a body cap, retries with backoff.

The fetcher drives a single injected `httpx.AsyncClient` (redirects off, so every hop is
checked against the crawl's host rule, robots.txt and filters). Each attempt runs through the
host's circuit breaker; only server-side trouble (5xx, timeouts, connection errors, bodies cut
short) counts against it, never 4xx or content problems. 429 and 503 honour `Retry-After`.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from ishan_tools.breaker import CircuitBreaker, CircuitBreakerOpenError
from ishan_tools.crawl.config import CrawlConfig
from ishan_tools.crawl.urls import normalize

__all__ = [
    "FetchFailed",
    "FetchResult",
    "Fetcher",
    "HostPaused",
    "counts_for_breaker",
    "fetch_text",
]


_REDIRECTS = {301, 302, 303, 307, 308}
_RETRY_STATUSES = {429, 503}


@dataclass
class FetchResult:
    """What one fetch produced. `body` is None when it was not read (type, status, 304)."""

    url: str
    final_url: str
    status: int
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = ""
    media_type: str = ""
    body: bytes | None = None
    elapsed_ms: int = 0
    etag: str | None = None
    last_modified: str | None = None
    retry_after: float | None = None


class FetchFailed(Exception):
    """A fetch that produced no usable response; `kind` names it for the summary."""

    def __init__(self, kind: str, message: str, *, server_side: bool, retryable: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.server_side = server_side
        self.retryable = retryable


class HostPaused(Exception):
    """The host's circuit is open: the URL goes back to its queue with `attempts` used."""

    def __init__(self, attempts: int) -> None:
        super().__init__("circuit open")
        self.attempts = attempts


class _ServerError(Exception):
    """A 5xx answer, raised inside the breaker call so that it counts as a failure."""

    def __init__(self, result: FetchResult) -> None:
        super().__init__(f"HTTP {result.status}")
        self.result = result


def counts_for_breaker(exc: BaseException) -> bool:
    """The breaker's failure predicate: server-side trouble only."""
    return isinstance(exc, _ServerError) or (isinstance(exc, FetchFailed) and exc.server_side)


async def fetch_text(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], *, timeout: float, limit: int
) -> tuple[int, str]:
    """GET a small text resource (robots.txt, a sitemap), redirects followed, size capped.

    A gzip body (sitemap.xml.gz) is inflated, also at most `limit` bytes. Returns (status,
    text); raises httpx errors, zlib.error and TimeoutError for the caller to log.
    """
    async with (
        asyncio.timeout(timeout),
        client.stream("GET", url, headers=headers, follow_redirects=True) as response,
    ):
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                break
            chunks.append(chunk)
        body = b"".join(chunks)
        if body[:2] == b"\x1f\x8b":
            body = zlib.decompressobj(wbits=47).decompress(body, limit)
        return response.status_code, body.decode("utf-8", errors="replace")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Fetcher:
    """Fetch URLs for the crawler; `check_redirect(url, target)` says why the redirect of a
    fetch of `url` to `target` is refused, or None (then it has claimed the target)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: CrawlConfig,
        check_redirect: Callable[[str, str], Awaitable[str | None]],
        on_event: Callable[[str, dict[str, object]], None],
    ) -> None:
        self.client = client
        self.config = config
        self.check_redirect = check_redirect
        self._event = on_event
        base = {"User-Agent": config.user_agent}
        base.update(config.headers)
        self.headers = base

    async def fetch(
        self,
        url: str,
        breaker: CircuitBreaker,
        *,
        attempts_done: int = 0,
        followed: set[str] | None = None,
        conditional: dict[str, str] | None = None,
    ) -> FetchResult:
        """Fetch with retries (counting `attempts_done` from before a pause).

        `followed` collects the redirect targets this URL's attempts claimed, so a retry may
        follow them again. Raises FetchFailed when every attempt failed, and HostPaused when
        the host's circuit is open before an attempt (the caller puts the URL back in the
        queue, with the attempts and `followed`).
        """
        attempt = attempts_done
        headers = {**self.headers, **(conditional or {})}
        followed = set() if followed is None else followed
        while True:
            attempt += 1
            delay: float | None = None
            try:
                result: FetchResult = await breaker.call_async(
                    self._attempt, url, headers, followed
                )
                if result.status not in _RETRY_STATUSES or attempt > self.config.retries:
                    return result
                delay, reason = result.retry_after, f"HTTP {result.status}"
            except _ServerError as exc:
                if attempt > self.config.retries:
                    return exc.result
                delay, reason = exc.result.retry_after, f"HTTP {exc.result.status}"
            except CircuitBreakerOpenError:
                raise HostPaused(attempt - 1) from None
            except FetchFailed as exc:
                if not exc.retryable or attempt > self.config.retries:
                    raise
                reason = f"{exc.kind}: {exc}"
            if delay is None:
                delay = self.config.backoff * 2 ** (attempt - 1)
            delay = min(delay, self.config.max_retry_after)
            self._event(
                "retry", {"url": url, "attempt": attempt, "reason": reason, "wait_s": delay}
            )
            await asyncio.sleep(delay)

    async def _attempt(self, url: str, headers: dict[str, str], followed: set[str]) -> FetchResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.timeout):
                result = await self._follow(url, headers, followed)
        except TimeoutError:
            raise FetchFailed(
                "timeout",
                f"no complete response within {self.config.timeout:g}s",
                server_side=True,
                retryable=True,
            ) from None
        except httpx.TimeoutException as exc:
            raise FetchFailed(
                "timeout", str(exc) or "timed out", server_side=True, retryable=True
            ) from None
        except httpx.RemoteProtocolError as exc:
            message = str(exc) or "protocol error"
            kind = "truncated" if "message body" in message else "connection"
            raise FetchFailed(kind, message, server_side=True, retryable=True) from None
        except httpx.TransportError as exc:
            raise FetchFailed(
                "connection", str(exc) or type(exc).__name__, server_side=True, retryable=True
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # e.g. a URL or header httpx refuses to send: the page's problem, not the host's
            raise FetchFailed(
                "request", str(exc) or type(exc).__name__, server_side=False, retryable=False
            ) from None
        result.elapsed_ms = int((time.monotonic() - started) * 1000)
        if result.status >= 500:
            raise _ServerError(result)
        return result

    async def _follow(self, url: str, headers: dict[str, str], followed: set[str]) -> FetchResult:
        """Request `url`, following redirects that pass the crawl's rules.

        `check_redirect` claims a target it accepts (marks it seen); `followed` remembers
        those claims so that a retry may follow the same redirect again.
        """
        hops = [url]
        current = url
        while True:
            async with self.client.stream("GET", current, headers=headers) as response:
                status = response.status_code
                location = response.headers.get("location")
                if status in _REDIRECTS and location:
                    target = normalize(str(response.url.join(location)))
                else:
                    return await self._read(url, current, response)
            if target is None:
                raise FetchFailed(
                    "redirect",
                    f"redirect to unusable URL {location!r}",
                    server_side=False,
                    retryable=False,
                )
            if target in hops:
                raise FetchFailed(
                    "redirect_loop",
                    f"redirect loop back to {target}",
                    server_side=False,
                    retryable=False,
                )
            if len(hops) > self.config.max_redirects:
                raise FetchFailed(
                    "redirect_loop",
                    f"more than {self.config.max_redirects} redirects",
                    server_side=False,
                    retryable=False,
                )
            self._event("redirect", {"url": current, "status": status, "location": target})
            refused = None if target in followed else await self.check_redirect(url, target)
            if refused == "duplicate":
                # Already queued or fetched under its own name: not fetched twice.
                return FetchResult(url=url, final_url=target, status=status)
            if refused is not None:
                raise FetchFailed(
                    "redirect_refused",
                    f"redirect to {target} refused ({refused})",
                    server_side=False,
                    retryable=False,
                )
            followed.add(target)
            hops.append(target)
            current = target

    async def _read(self, url: str, final_url: str, response: httpx.Response) -> FetchResult:
        content_type = response.headers.get("content-type", "")
        result = FetchResult(
            url=url,
            final_url=final_url,
            status=response.status_code,
            reason=response.reason_phrase,
            headers=list(response.headers.multi_items()),
            content_type=content_type,
            media_type=content_type.split(";", 1)[0].strip().lower(),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
        if not 200 <= result.status < 300 or not self.config.allows_type(result.media_type):
            return result
        cap = self.config.max_page_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise _too_large(cap)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise _too_large(cap)
            chunks.append(chunk)
        result.body = b"".join(chunks)
        return result


def _too_large(cap: int) -> FetchFailed:
    return FetchFailed(
        "too_large", f"body larger than --max-page-bytes {cap}", server_side=False, retryable=False
    )
