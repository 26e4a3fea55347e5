"""`merge_crawls`: join the out dirs of a shared crawl's workers into one crawl dir.

Fetching is at least once, so a URL can have lines in several workers' manifests (a worker
died after saving a page and before acknowledging it, and another fetched it again). The
merged manifest keeps one line per URL, the last: the latest `fetched_at`, and among equal
times the later directory on the command line, then the later line. The page files those
lines name are copied once each; file names are URL hashes, so equal names are equal pages.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ishan_tools.crawl.storage import MANIFEST, Storage
from ishan_tools.errors import CrawlError, UsageError

__all__ = ["MergeResult", "merge_crawls"]


@dataclass(frozen=True)
class MergeResult:
    """What a merge did: dirs read, manifest lines read, URLs kept, files copied."""

    dirs: int
    lines: int
    urls: int
    files: int

    @property
    def repeats(self) -> int:
        """Lines dropped: URLs fetched more than once."""
        return self.lines - self.urls


def merge_crawls(dirs: list[Path], out: Path) -> MergeResult:
    """Merge the crawl dirs `dirs` into `out` (new, or empty of any crawl)."""
    if not dirs:
        raise UsageError("nothing to merge: name the workers' out dirs")
    for path in dirs:
        if not (path / MANIFEST).is_file():
            raise UsageError(f"{path} holds no crawl ({MANIFEST} is missing)")
        if path.resolve() == out.resolve():
            raise UsageError(f"-o {out} is one of the dirs to merge: write to a new dir")
    if (out / MANIFEST).exists():
        raise UsageError(f"{out} already holds a crawl: merge into a new dir")
    latest: dict[str, tuple[tuple[str, int, int], Path, dict[str, Any]]] = {}
    lines = 0
    for index, path in enumerate(dirs):
        for line, record in enumerate(Storage(path).manifest_records()):
            url = record.get("url")
            if not isinstance(url, str):
                continue
            lines += 1
            order = (str(record.get("fetched_at") or ""), index, line)
            if url not in latest or order > latest[url][0]:
                latest[url] = (order, path, record)
    try:
        out.mkdir(parents=True, exist_ok=True)
        copied: set[str] = set()
        with (out / MANIFEST).open("w", encoding="utf-8") as manifest:
            for _, path, record in sorted(latest.values(), key=lambda entry: entry[0]):
                name = record.get("file")
                if isinstance(name, str) and name and "/" not in name and name not in copied:
                    shutil.copyfile(path / name, out / name)
                    copied.add(name)
                manifest.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise CrawlError(f"cannot merge into {out} ({exc.strerror or exc})") from exc
    return MergeResult(dirs=len(dirs), lines=lines, urls=len(latest), files=len(copied))
