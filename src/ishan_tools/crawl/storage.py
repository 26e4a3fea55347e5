"""Everything the crawl writes: pages, `manifest.jsonl`, the frontier log, the optional WARC.

The only module that writes files. Pages are written atomically (temporary file, then
rename); manifest and frontier-log lines are flushed to the OS as each page completes, so a
crawl killed at any moment (Ctrl-C or SIGKILL) can be resumed: the frontier log holds every
URL ever queued, the manifest every URL finished, and a line cut short by the kill is ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ishan_tools.errors import CrawlError, UsageError

__all__ = ["MANIFEST", "STATE_DIR", "Storage"]

MANIFEST = "manifest.jsonl"
STATE_DIR = ".ishan-crawl"
FRONTIER_LOG = "frontier.jsonl"
STATE_FILE = "state.json"
LOCK_FILE = "lock"


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a line cut short by a kill is skipped."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def _end_unfinished_line(path: Path) -> None:
    """End a JSON-lines file's last line if a kill left it unfinished, before appending."""
    if path.exists() and path.stat().st_size:
        with path.open("rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                fh.write(b"\n")


class Storage:
    """The out dir of one crawl. Call `prepare` before any fetch, `close` at the end."""

    def __init__(self, out_dir: Path, *, warc: Path | None = None) -> None:
        self.out_dir = out_dir
        self.state_dir = out_dir / STATE_DIR
        self.manifest_path = out_dir / MANIFEST
        self.frontier_path = self.state_dir / FRONTIER_LOG
        self.warc_path = warc
        self._manifest: IO[str] | None = None
        self._frontier: IO[bytes] | None = None
        self._warc_file: IO[bytes] | None = None
        self._warc_writer: Any = None
        self._warc_mode = "ab"
        self._lock: IO[bytes] | None = None

    # -- setting up -------------------------------------------------------------------------

    def holds_crawl(self) -> bool:
        return self.manifest_path.exists() or self.state_dir.exists()

    def prepare(
        self,
        *,
        seeds: list[str],
        resume: bool,
        overwrite: bool,
        refresh: bool,
        crawl_id: str | None = None,
    ) -> dict[str, Any]:
        """Check the out dir before any fetch: writable, and not holding another crawl.

        A worker of the shared crawl `crawl_id` goes on adding to its own dir, and holds it
        (a lock file) so that no other worker writes there. Returns the state the previous
        crawl left (empty for a new one).
        """
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            probe = self.out_dir / ".ishan-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise CrawlError(
                f"cannot write to out dir {self.out_dir} ({exc.strerror or exc}): "
                "choose another --out-dir or fix its permissions"
            ) from None
        if (
            self.warc_path is not None
            and self.warc_path.exists()
            and not (resume or refresh or overwrite)
        ):
            raise UsageError(
                f"WARC file {self.warc_path} already exists: pass --overwrite to replace it, "
                "--resume or --refresh to add to it, or another --warc name"
            )
        self._warc_mode = "wb" if overwrite else "ab"
        if self.holds_crawl():
            state = self.read_state()
            if overwrite:
                self._remove_previous_crawl()
            elif crawl_id is not None:
                if state.get("crawl_id") != crawl_id:
                    raise UsageError(
                        f"{self.out_dir} already holds another crawl: pass another --out-dir "
                        "(or --overwrite to replace it)"
                    )
                self._hold()
                return state
            elif not (resume or refresh):
                raise UsageError(
                    f"{self.out_dir} already holds a crawl: pass --resume to continue it, "
                    "--refresh to re-check it, or --overwrite to start again"
                )
            else:
                before = state.get("seeds") or ([state["seed"]] if state.get("seed") else [])
                if before and before != seeds:
                    theirs, ours = ", ".join(before), ", ".join(seeds)
                    raise UsageError(
                        f"{self.out_dir} holds a crawl of {theirs}, not {ours}: "
                        "use the same seed or another --out-dir"
                    )
                return state
        if crawl_id is not None:
            self._hold()
        self.write_state(self.state_for(seeds, crawl_id=crawl_id))
        return {}

    @staticmethod
    def state_for(
        seeds: list[str], roots: dict[str, str] | None = None, *, crawl_id: str | None = None
    ) -> dict[str, Any]:
        """The state file's content: the start URL(s), the hosts their sites are on (once
        one moved), the shared crawl it belongs to."""
        state: dict[str, Any] = {"seed": seeds[0]} if len(seeds) == 1 else {"seeds": seeds}
        if roots and len(seeds) == 1:
            state["root_host"] = roots[seeds[0]]
        elif roots:
            state["root_hosts"] = roots
        if crawl_id is not None:
            state["crawl_id"] = crawl_id
        return state

    def _hold(self) -> None:
        """Lock the out dir for this process; another worker pointed here is refused."""
        self.state_dir.mkdir(exist_ok=True)
        handle = (self.state_dir / LOCK_FILE).open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise UsageError(
                f"{self.out_dir} is in use by another worker: give each worker its own "
                "--out-dir (the default crawl_out/<worker-id> is)"
            ) from None
        self._lock = handle

    def _remove_previous_crawl(self) -> None:
        for record in _read_jsonl(self.manifest_path):
            name = record.get("file")
            if isinstance(name, str) and "/" not in name and name:
                (self.out_dir / name).unlink(missing_ok=True)
        self.manifest_path.unlink(missing_ok=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def read_state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.state_dir / STATE_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_state(self, state: dict[str, Any]) -> None:
        """Record what a resumed crawl must know (its seed, the host it settled on)."""
        self.state_dir.mkdir(exist_ok=True)
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), "utf-8")
        tmp.replace(path)

    def open(self, *, fresh_run: bool, frontier_log: bool = True) -> None:
        """Open the manifest and frontier log for appending (truncated when `fresh_run`);
        a worker of a shared crawl keeps no frontier log (`frontier_log` False)."""
        if fresh_run:
            self.manifest_path.unlink(missing_ok=True)
            self.frontier_path.unlink(missing_ok=True)
        _end_unfinished_line(self.manifest_path)
        self._manifest = self.manifest_path.open("a", encoding="utf-8")
        if frontier_log:
            _end_unfinished_line(self.frontier_path)
            self._frontier = self.frontier_path.open("ab")
        if self.warc_path is not None:
            from warcio.warcwriter import WARCWriter  # type: ignore[import-untyped]

            self.warc_path.parent.mkdir(parents=True, exist_ok=True)
            self._warc_file = self.warc_path.open(self._warc_mode)
            self._warc_writer = WARCWriter(self._warc_file, gzip=True)

    def close(self) -> None:
        for handle in (self._frontier, self._manifest, self._warc_file, self._lock):
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        self._frontier = self._manifest = self._warc_file = self._lock = None

    # -- reading a previous crawl -------------------------------------------------------------

    def manifest_records(self) -> Iterator[dict[str, Any]]:
        return _read_jsonl(self.manifest_path)

    def read_page(self, name: str) -> bytes | None:
        try:
            return (self.out_dir / name).read_bytes()
        except OSError:
            return None

    # -- writing as the crawl goes ------------------------------------------------------------

    def frontier_position(self) -> int:
        """The byte offset at which the next frontier-log line will start."""
        assert self._frontier is not None
        return self._frontier.tell()

    def log_queued(self, url: str, depth: int) -> None:
        """Append one newly queued URL to the frontier log (flushed with the next manifest line)."""
        assert self._frontier is not None
        self._frontier.write(f'{{"u":{json.dumps(url)},"d":{depth}}}\n'.encode())

    def frontier_from(self, offset: int) -> Iterator[tuple[dict[str, Any], int]]:
        """Frontier-log records from a byte offset, each with the offset just after it."""
        if self._frontier is not None:
            self._frontier.flush()
        if not self.frontier_path.exists():
            return
        with self.frontier_path.open("rb") as fh:
            fh.seek(offset)
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return
                offset += len(raw)
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record, offset

    def write_page(self, name: str, body: bytes) -> None:
        """Write one page atomically; raises OSError (the caller logs `save_err`)."""
        path = self.out_dir / name
        tmp = self.out_dir / f".{name}.part"
        with tmp.open("wb") as fh:
            fh.write(body)
        tmp.replace(path)

    def record(self, entry: dict[str, Any]) -> None:
        """Append one manifest line; the frontier log is flushed first so that every URL a
        finished page queued is on disk before the page counts as finished."""
        assert self._manifest is not None
        if self._frontier is not None:
            self._frontier.flush()
        self._manifest.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._manifest.flush()

    def write_warc(
        self, url: str, status: int, reason: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Append a WARC response record (headers describe the decoded body)."""
        if self._warc_writer is None:
            return
        from warcio.statusandheaders import StatusAndHeaders  # type: ignore[import-untyped]

        skip = {"content-encoding", "transfer-encoding", "content-length"}
        kept = [(k, v) for k, v in headers if k.lower() not in skip]
        kept.append(("Content-Length", str(len(body))))
        http_headers = StatusAndHeaders(f"{status} {reason}", kept, protocol="HTTP/1.1")
        record = self._warc_writer.create_warc_record(
            url, "response", payload=io.BytesIO(body), http_headers=http_headers
        )
        self._warc_writer.write_record(record)
