"""Running the library crawler against a fixture server and reading what it left on disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from ishan_tools.crawl import CrawlConfig, Crawler, Event, url_hash


class Recorder:
    """An event sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e.fields for e in self.events if e.name == name]

    def names(self) -> list[str]:
        return [e.name for e in self.events]


def run_crawl(seed: str, out_dir: Path, **options: Any) -> tuple[dict[str, Any], Recorder]:
    """Crawl with the library, as a program embedding it would; returns (summary, events)."""
    recorder = Recorder()
    config = CrawlConfig(seed=seed, out_dir=out_dir, **options)
    summary = asyncio.run(Crawler(config, sink=recorder).run())
    return dict(summary), recorder


def manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The manifest as {url: last record}."""
    records: dict[str, dict[str, Any]] = {}
    for line in (out_dir / "manifest.jsonl").read_text("utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["url"]] = record
    return records


def saved_page(out_dir: Path, url: str) -> bytes:
    """The bytes saved for a URL, found by the documented name: sha256(url)[:16].html."""
    return (out_dir / f"{url_hash(url)}.html").read_bytes()
