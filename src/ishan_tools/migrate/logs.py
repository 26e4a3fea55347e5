"""The run log: JSON lines in `migrationLogs/<migration>-<run id>.jsonl`, one file per worker
(`...-<run id>-w2.jsonl` for a local worker, `...-<run id>-<host>-<pid>.jsonl` for one that joined).

Lines are held per batch and written when the batch's writes are done, so a batch that is
retried after a write error does not log twice. Each line has a timestamp, the action, the
`_id` of the document being migrated and the content. A participant's `summary` line gives
its own counts and how its part ended (`done`, `failed` or `interrupted`); the participant
that closes the run then adds an `end` line: how the run ended (`applied`, `failed` or
`interrupted`, as the changelog records it). A participant that loses the server ends with
its summary.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ishan_tools.migrate.report import RunSummary


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunLog:
    """Collects `write_log(action, content)` calls and appends them to the run's file."""

    def __init__(
        self, directory: Path, migration: str, run_id: str, worker: str | None = None
    ) -> None:
        name = f"{migration}-{run_id}" + (f"-{worker}" if worker else "")
        self.path = directory / f"{name}.jsonl"
        self.doc_id: Any = None
        self._held: list[str] = []
        self._file: IO[str] | None = None
        self._directory = directory

    def write_log(self, action: Any, content: Any = None) -> None:
        """The callback's logger (the original library's `writeLog(action, content)`)."""
        self._held.append(self._line(str(action), content, self.doc_id))

    def _line(self, action: str, content: Any, doc_id: Any) -> str:
        entry = {"ts": _now(), "action": action, "doc_id": doc_id, "content": content}
        return json.dumps(entry, default=str, ensure_ascii=False)

    def event(self, action: str, content: Any, doc_id: Any = None) -> None:
        """A line from the runner itself (errors, the summary); written at once."""
        self._held.append(self._line(action, content, doc_id))
        self.commit()

    def end(self, run: RunSummary) -> None:
        """Write the last line, how the closed run ended, and close the file."""
        content = {
            "run_id": run.run_id,
            "status": run.status,
            "processed": run.processed,
            "errors": run.error_count,
            "stop_reason": run.stop_reason,
        }
        self.event("end", content)
        self.close()

    def discard(self) -> None:
        """Forget the lines held since the last commit (their batch is being redone)."""
        self._held.clear()

    def commit(self) -> None:
        """Append the held lines to the file."""
        if not self._held:
            return
        if self._file is None:
            self._directory.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write("\n".join(self._held) + "\n")
        self._file.flush()
        self._held.clear()

    def close(self) -> None:
        self.commit()
        if self._file is not None:
            self._file.close()
            self._file = None
