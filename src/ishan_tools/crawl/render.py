"""Event sinks for the command line: JSON lines, a rich progress display, quiet mode.

The only code of `ishan crawl` that writes to the terminal. Loaded by the command, never by
the library.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ishan_tools.crawl.events import CrawlStats, Event

__all__ = [
    "JsonLinesSink",
    "ProgressSink",
    "QuietSink",
    "close_sink",
    "open_sink",
    "render_status",
    "render_summary",
]

_ERROR_EVENTS = {"fetch_err", "save_err", "robots_err"}


def _human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


class JsonLinesSink:
    """Writes each event as one JSON line (the default when stdout is not a terminal).

    When the reader goes away (`ishan crawl ... | head`), `on_closed` is called once (the
    command stops the crawl, which stays resumable) and later events are dropped.
    """

    def __init__(
        self, stream: IO[str] | None = None, on_closed: Callable[[], None] | None = None
    ) -> None:
        self.stream = stream or sys.stdout
        self.on_closed = on_closed
        self.closed = False

    def __call__(self, event: Event) -> None:
        if self.closed:
            return
        try:
            self.stream.write(event.to_json() + "\n")
            if event.name in ("summary", "save", "fetch_err"):
                self.stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        self.closed = True
        if self.stream is sys.stdout:
            # Python would report the broken pipe again when it flushes stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        if self.on_closed is not None:
            self.on_closed()

    def close(self) -> None:
        if not self.closed:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()


class QuietSink:
    """-q: only errors (on stderr) and, at the end, the summary."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.summary: dict[str, Any] | None = None

    def __call__(self, event: Event) -> None:
        if event.name in _ERROR_EVENTS:
            fields = event.fields
            self.console.print(
                Text(f"{event.name} {fields.get('url', '')}: {fields.get('error', '')}", "red"),
                soft_wrap=True,
            )
        elif event.name == "summary":
            self.summary = event.fields

    def close(self) -> None:
        pass


class ProgressSink(QuietSink):
    """A live line (pages, bytes, rate, errors, queue) above which errors scroll by."""

    def __init__(self, console: Console, stats: CrawlStats) -> None:
        super().__init__(console)
        self.stats = stats
        self.live = Live(self, console=console, refresh_per_second=4, transient=True)
        self.live.start()

    def __rich__(self) -> Text:
        stats = self.stats
        elapsed = max(stats.elapsed(), 1e-9)
        return Text.assemble(
            ("crawling ", "bold"),
            f"pages {stats.fetched} saved {stats.saved} {_human_bytes(stats.bytes)} ",
            f"{stats.fetched / elapsed:.1f}/s ",
            (f"errors {sum(stats.errors.values())} ", "red" if stats.errors else ""),
            f"queue {stats.queued} active {stats.in_flight}",
        )

    def close(self) -> None:
        self.live.stop()


def render_summary(console: Console, summary: dict[str, Any]) -> None:
    """The final summary table of a crawl."""
    table = Table(title=f"crawl {summary.get('stop_reason', '')}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    seeds = summary.get("seeds") or []
    if seeds:
        shown = seeds if len(seeds) <= 5 else [*seeds[:4], f"... {len(seeds) - 4} more"]
        table.add_row("start URLs", "\n".join(shown))
    else:
        table.add_row("seed", str(summary.get("seed", "")))
    if summary.get("crawl_id"):
        table.add_row("shared crawl", f"{summary['crawl_id']} (worker {summary.get('worker')})")
    table.add_row("out dir", str(summary.get("out_dir", "")))
    table.add_row("pages fetched", str(summary["pages"]))
    table.add_row("pages saved", str(summary["saved"]))
    table.add_row("bytes", _human_bytes(summary["bytes"]))
    if summary.get("not_modified"):
        table.add_row("not modified (304)", str(summary["not_modified"]))
    table.add_row("retries", str(summary["retries"]))
    errors = summary.get("errors_by_kind") or {}
    table.add_row("errors", ", ".join(f"{k} {v}" for k, v in errors.items()) or "0")
    skipped = summary.get("skipped_by_reason") or {}
    if skipped:
        table.add_row("skipped", ", ".join(f"{k} {v}" for k, v in skipped.items()))
    breakers = summary.get("breakers") or {}
    if breakers:
        table.add_row(
            "host breakers",
            "\n".join(
                f"{host} {seen['state']} (opened {seen['opened']}x)"
                for host, seen in breakers.items()
            ),
        )
    if summary.get("queued"):
        where = "in the shared crawl" if summary.get("crawl_id") else "continue with --resume"
        table.add_row("still queued", f"{summary['queued']} ({where})")
    table.add_row("duration", f"{summary['duration_s']:.2f} s")
    table.add_row("rate", f"{summary['pages_per_s']:.1f} pages/s")
    console.print(table)


_STATUS_HOSTS = 20


def render_status(console: Console, status: dict[str, Any]) -> None:
    """`ishan crawl status`: the crawl's counts, its busiest hosts and its workers."""
    urls = status["start_urls"]
    sites = urls[0] if len(urls) == 1 else f"{len(urls)} sites"
    console.print(
        f"crawl [bold]{status['crawl_id']}[/bold] at {status['frontier']}: {status['state']}, "
        f"{sites}, {status['elapsed_s']:.0f} s since it started"
    )
    totals = Table(show_header=True, box=None, padding=(0, 2, 0, 0))
    columns = ("queued", "leased", "done", "failed", "skipped", "seen")
    for name in (*columns, "bytes", "pages/s"):
        totals.add_column(name, justify="right")
    totals.add_row(
        *(str(status[name]) for name in columns),
        _human_bytes(status["bytes"]),
        f"{status['pages_per_s']:.1f}",
    )
    console.print(totals)
    hosts = sorted(status["hosts"], key=lambda h: (-(h["queued"] + h["leased"]), h["host"]))
    table = Table(title=f"hosts ({len(hosts)})", title_justify="left")
    for name in ("host", "queued", "leased", "done", "failed", "skipped", "breaker"):
        table.add_column(name, justify="left" if name in ("host", "breaker") else "right")
    for host in hosts[:_STATUS_HOSTS]:
        table.add_row(host["host"], *(str(host[n]) for n in columns[:5]), host["breaker"])
    if len(hosts) > _STATUS_HOSTS:
        table.add_row(f"... {len(hosts) - _STATUS_HOSTS} more", *[""] * 6)
    console.print(table)
    alive = [w for w in status["workers"] if w["alive"]]
    workers = Table(title=f"workers alive ({len(alive)})", title_justify="left")
    for name in ("worker", "host", "pid", "pages", "pages/s", "leases", "last beat"):
        workers.add_column(name, justify="left" if name in ("worker", "host") else "right")
    for worker in status["workers"]:
        beat = f"{worker['last_beat_s']:.1f} s ago" + ("" if worker["alive"] else " (gone)")
        workers.add_row(
            worker["worker"],
            str(worker.get("host", "")),
            str(worker.get("pid", "")),
            str(worker["pages"]),
            f"{worker['pages_per_s']:.1f}",
            str(worker["leases"]),
            beat,
        )
    console.print(workers)


def open_sink(
    log_format: str, *, quiet: bool, stats: CrawlStats, stop: Callable[[str], None]
) -> JsonLinesSink | QuietSink:
    """The sink for --log-format/-q: JSON lines when asked or when stdout is not a terminal
    (a closed pipe calls `stop`), else the progress display, or errors only with -q."""
    if log_format == "json" or (log_format == "auto" and not quiet and not sys.stdout.isatty()):
        return JsonLinesSink(on_closed=lambda: stop("stdout_closed"))
    errors = Console(stderr=True)
    return QuietSink(errors) if quiet else ProgressSink(errors, stats)


def close_sink(sink: JsonLinesSink | QuietSink) -> None:
    """Stop the display and print the summary table (the JSON sink has logged it already)."""
    sink.close()
    if isinstance(sink, QuietSink) and sink.summary is not None:
        render_summary(Console(), sink.summary)
