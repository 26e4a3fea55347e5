"""Running a migration: one `_id`-sorted cursor, a callback per document, a bulk write per batch.

Exactly once: before a flush's writes, the before-images of everything it can touch are saved
under the batch's number; after the batch, the checkpoint (last `_id` done) and `done_batch`
are recorded in one update. A resumed run first restores the images of a batch numbered above
`done_batch` (one cut short), then redoes that batch. With `--no-backup` nothing is restored,
so a batch cut short is written twice (at least once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.errors import BulkWriteError, CursorNotFound

from ishan_tools.errors import MigrationError
from ishan_tools.migrate import backup, changelog
from ishan_tools.migrate.buffer import BufferedCollection, PendingOp, WriteBuffer, id_equality
from ishan_tools.migrate.changelog import APPLIED, FAILED, INTERRUPTED
from ishan_tools.migrate.context import MigrationContext, new_run_id
from ishan_tools.migrate.lock import MigrationLock, utcnow
from ishan_tools.migrate.logs import RunLog
from ishan_tools.migrate.query import primary_query
from ishan_tools.migrate.report import DEFAULT_BATCH_SIZE, SAMPLE_SIZE, RunConfig, RunSummary, Tally
from ishan_tools.migrate.script import MigrationScript, check_collection_name

Progress = Callable[[int, int | None], None]
RAW = CodecOptions(document_class=RawBSONDocument)
DRY_RUN = "dry run"


class _WriteFailure(BaseException):
    """A bulk write the server refused; a BaseException so a callback's `except` can't eat it."""

    def __init__(self, doc_id: Any, message: str) -> None:
        super().__init__(message)
        self.doc_id = doc_id
        self.message = message


class Runner:
    """One run of one script; `run()` returns its summary (the status it left included)."""

    def __init__(
        self, database: Any, script: MigrationScript, config: RunConfig, progress: Progress | None
    ) -> None:
        self.database, self.script, self.config = database, script, config
        self.progress = progress
        self.run_id = new_run_id()
        self.batch_size = config.batch_size or script.batch_size or DEFAULT_BATCH_SIZE
        self.log = RunLog(config.log_dir, script.name, self.run_id)
        self.summary = RunSummary(
            script.name,
            self.run_id,
            DRY_RUN,
            dry_run=config.dry_run,
            resumed=False,
            backup=config.backup,
        )
        self.summary.log_path = self.log.path
        self.buffer = WriteBuffer(self._flush)
        self._collections: dict[str, BufferedCollection] = {}
        self._callback_collections: list[Any] | None = None
        self.context = MigrationContext(
            migration=self.script.name,
            run_id=self.run_id,
            dry_run=self.config.dry_run,
            collection=self.collection,
            log=self.log.write_log,
        )
        self.batch_no = self.flush_no = 0
        self.run_index = -1
        self.lock: MigrationLock | None = None
        self.last_done: Any = None
        self.has_done = self.stopped = False
        self.done_before = 0
        self._known: dict[Any, RawBSONDocument] | None = None
        self._batch_keys: set[Any] = set()
        self._primary_clean = script.projection is None
        self._inserted_primary: set[Any] = set()
        self._reset_unit()

    def collection(self, name: str) -> BufferedCollection:
        if name not in self._collections:
            check_collection_name(name, "collection")
            self._collections[name] = BufferedCollection(self.database[name], self.buffer)
        return self._collections[name]

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> RunSummary:
        names = self.database.list_collection_names()
        if self.script.primary not in names:
            existing = ", ".join(sorted(n for n in names if not n.startswith("_ishan_"))) or "none"
            raise MigrationError(
                f"{self.script.path.name}: primary collection {self.script.primary!r} does not "
                f"exist in database {self.database.name!r} (collections: {existing})"
            )
        started = time.perf_counter()
        try:
            if self.config.dry_run:
                self._process_all(primary_query(self.script.filter))
            else:
                self._real_run()
        finally:
            self.summary.elapsed_s = time.perf_counter() - started
            if self.config.dry_run or self.run_index >= 0:  # not for a refused run
                self.log.event("summary", self.summary.as_dict())
            self.log.close()
        return self.summary

    def _real_run(self) -> None:
        self.lock = MigrationLock(
            self.database, self.script.name, self.run_id, ttl_s=self.config.lock_ttl_s
        ).acquire()
        try:
            record = changelog.get(self.database, self.script.name)
            restart = changelog.starts_over(
                record, self.script.name, resume=self.config.resume, force=self.config.force
            )
            query = self._prepare(record, restart=restart)
            self._process_all(query)
        except KeyboardInterrupt:
            self._finish_quietly(INTERRUPTED, "interrupted (Ctrl-C): continue with --resume")
            raise
        except Exception as exc:
            self._finish_quietly(FAILED, f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.lock.release()

    def _prepare(self, record: dict[str, Any] | None, *, restart: bool) -> dict[str, Any]:
        """Restore a batch cut short (resume), open the run in the changelog; the cursor query."""
        if self.config.backup:
            backup.ensure_index(self.database)
        self.batch_no = int(record.get("done_batch", 0)) if record else 0
        start: dict[str, Any] | None = None
        if not restart:
            assert record is not None
            self.summary.resumed = True
            self.summary.restored = backup.restore_after(
                self.database, self.script.name, self.batch_no
            )
            self.done_before = sum(int(run.get("processed", 0)) for run in record["runs"])
            start = record.get("checkpoint")
            self._inserted_primary = backup.inserted_ids(
                self.database, self.script.name, self.script.primary
            )
        run = {
            "run_id": self.run_id,
            "mode": "resume" if not restart else "force" if self.config.force else "run",
            "started_at": utcnow(),
            "processed": 0,
            "errors": 0,
            "no_backup": not self.config.backup,
            "batch_size": self.batch_size,
            "log": str(self.log.path),
        }
        self.run_index = changelog.begin_run(self.database, self.script, run, restart=restart)
        if start is None:
            return primary_query(self.script.filter)
        return primary_query(self.script.filter, start_after=start["after"], has_start=True)

    def _process_all(self, query: dict[str, Any]) -> None:
        total = None if self.progress is None else self._estimate_total()
        for batch in self._batches(query):
            if not self._process(batch):
                break
            if self.progress is not None:
                self.progress(self.done_before + self.summary.processed, total)
        if self.config.dry_run:
            return
        if self.stopped:
            self._finish(FAILED, self.summary.stop_reason)
        elif self.summary.stop_reason is not None:
            self._finish(INTERRUPTED, self.summary.stop_reason)
        else:
            self._finish(APPLIED, None)

    def _estimate_total(self) -> int:
        primary = self.database[self.script.primary]
        if self.script.filter:
            total: int = primary.count_documents(self.script.filter)
        else:
            total = primary.estimated_document_count()
        if self.config.limit is not None:
            total = min(total, self.done_before + self.config.limit)
        return total

    def _batches(self, query: dict[str, Any]) -> Iterator[list[RawBSONDocument]]:
        """Batches from one long-lived `_id`-sorted cursor (reopened if the server drops it)."""
        primary = self.database[self.script.primary].with_options(codec_options=RAW)
        limit = self.config.limit
        seen = 0
        batch: list[RawBSONDocument] = []
        last_seen: list[Any] = []
        cursor = primary.find(query, self.script.projection).sort("_id", 1)
        cursor = cursor.batch_size(self.batch_size)
        try:
            while True:
                try:
                    document = next(cursor)
                except StopIteration:
                    break
                except CursorNotFound:  # idle too long on a real server: go on from the last seen
                    cursor.close()
                    reopened = query
                    if last_seen:
                        reopened = primary_query(query, start_after=last_seen[0], has_start=True)
                    cursor = primary.find(reopened, self.script.projection).sort("_id", 1)
                    cursor = cursor.batch_size(self.batch_size)
                    continue
                if limit is not None and seen >= limit:
                    self.summary.stop_reason = f"stopped after --limit {limit}: more remain"
                    break
                batch.append(document)
                last_seen[:] = [document["_id"]]
                seen += 1
                if len(batch) >= self.batch_size:
                    yield batch
                    batch = []
            if batch:
                yield batch
        finally:
            cursor.close()

    # -- one batch -------------------------------------------------------------------------

    def _process(self, raw_batch: list[RawBSONDocument]) -> bool:
        """Run the callbacks of one batch, write it, checkpoint it; False: stop the run."""
        self.batch_no += 1
        self.flush_no = 0
        codec = self.database.codec_options
        docs = [bson.decode(raw.raw, codec_options=codec) for raw in raw_batch]
        if self._inserted_primary:  # documents this migration added to its own collection
            kept = [(d, r) for d, r in zip(docs, raw_batch, strict=True) if not self._ours(d)]
            docs, raw_batch = [d for d, _ in kept], [r for _, r in kept]
        self._batch_keys = {backup.id_key(doc["_id"]) for doc in docs}
        real = not self.config.dry_run
        use_known = real and self.config.backup and self._primary_clean
        self._known = None
        if use_known:
            self._known = {
                backup.id_key(doc["_id"]): raw for doc, raw in zip(docs, raw_batch, strict=True)
            }
        if self.lock is not None:
            self.lock.renew()
        try:
            self._run_callbacks(docs)
            self._flush(None)
        except _WriteFailure as failure:
            self.buffer.take()
            self.log.discard()
            self._reset_unit()
            if self.config.backup:
                backup.restore_flushes(self.database, self.script.name, self.batch_no, 0)
            if not (self.config.backup and self.config.continue_on_error):
                return self._stop_on_write_failure(failure)
            self._retry_one_by_one(docs)
        self._commit_unit()
        return not self.stopped

    def _stop_on_write_failure(self, failure: _WriteFailure) -> bool:
        self.summary.add_error(failure.doc_id, failure.message)
        self.log.event("error", failure.message, failure.doc_id)
        undone = "undone" if self.config.backup else "possibly partly written (--no-backup)"
        self.summary.stop_reason = (
            f"write failed for document {failure.doc_id!r}: {failure.message}; "
            f"batch {self.batch_no} was {undone}"
        )
        self.stopped = True
        return False

    def _run_callbacks(self, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            if not self._call(doc) and not self.config.continue_on_error:
                self.stopped = True
                self.summary.stop_reason = (
                    f"migrate() failed for document {doc['_id']!r}: {self.summary.errors[-1].error}"
                    if self.summary.errors
                    else f"migrate() failed for document {doc['_id']!r}"
                )
                return
            self.last_done, self.has_done = doc["_id"], True

    def _call(self, doc: dict[str, Any]) -> bool:
        """Call migrate() for one document; on an exception drop its buffered writes."""
        self.buffer.source_id = self.log.doc_id = doc["_id"]
        mark = self.buffer.mark()
        try:
            if self.script.collections is None:
                self.script.migrate(doc, self.context)
            else:
                if self._callback_collections is None:
                    self._callback_collections = [
                        self.collection(name) for name in self.script.collections
                    ]
                self.script.migrate(doc, *self._callback_collections, self.log.write_log)
        except Exception as exc:
            self.buffer.discard_since(mark)
            message = f"{type(exc).__name__}: {exc}"
            self.summary.add_error(doc["_id"], message)
            self.log.write_log("error", message)
            self._unit_errors += 1
            return False
        self._unit_processed += 1
        return True

    def _retry_one_by_one(self, docs: list[dict[str, Any]]) -> None:
        """After a refused bulk write: redo the batch a document at a time, skipping failures."""
        self._known = None
        for doc in docs:
            first_flush = self.flush_no
            succeeded = False
            try:
                succeeded = self._call(doc)
                self._flush(None)
            except _WriteFailure as failure:
                self.buffer.take()
                backup.restore_flushes(self.database, self.script.name, self.batch_no, first_flush)
                self._unit_processed -= int(succeeded)
                self._unit_errors += 1
                self.summary.add_error(doc["_id"], failure.message)
                self.log.write_log("error", failure.message)
            self.last_done, self.has_done = doc["_id"], True

    def _flush(self, names: list[str] | None) -> None:
        """Write queued ops: save before-images, then one ordered bulk_write per collection."""
        taken = self.buffer.take(names)
        if not taken:
            return
        for name, ops in taken.items():
            for op in ops:
                self._unit_ops.add(name, op.kind)
        if self.config.dry_run:
            self._sample(taken)
            return
        images = []
        if self.config.backup:  # before _track_primary: it retires the cursor's copies
            images = backup.capture(self.database, taken, self._known, self.script.primary)
        self._track_primary(taken.get(self.script.primary, []))
        if images:
            backup.save(self.database, self.script.name, self.batch_no, self.flush_no, images)
        self.flush_no += 1
        for name, ops in taken.items():
            try:
                result = self.database[name].bulk_write([op.request for op in ops], ordered=True)
            except BulkWriteError as exc:
                first = exc.details["writeErrors"][0]
                op = ops[first["index"]]
                message = f"{op.kind} on {name}: {first.get('errmsg', exc)}"
                raise _WriteFailure(op.source_id, message) from None
            for field in ("matched", "modified", "inserted", "deleted", "upserted"):
                self._unit_results.add(name, field, getattr(result, f"{field}_count"))

    def _ours(self, doc: dict[str, Any]) -> bool:
        return backup.id_key(doc["_id"]) in self._inserted_primary

    def _track_primary(self, ops: list[PendingOp]) -> None:
        """Remember documents inserted into the primary collection (the cursor skips them), and
        keep the cursor's copies usable as images only while writes stay inside the batch."""
        for op in ops:
            self._inserted_primary.update(backup.id_key(doc_id) for doc_id in op.new_ids)
        for op in ops:
            pinned, value = id_equality(op.filter)
            keys = [backup.id_key(v) for v in [*op.new_ids, *([value] if pinned else [])]]
            if (op.filter is not None and not pinned) or not self._batch_keys.issuperset(keys):
                self._primary_clean = False
                self._known = None
                return
            if self._known is not None:
                for key in keys:
                    self._known.pop(key, None)

    def _sample(self, taken: dict[str, list[PendingOp]]) -> None:
        for name, ops in taken.items():
            for op in ops:
                if len(self.summary.samples) >= SAMPLE_SIZE:
                    return
                sample = {"collection": name, "op": op.kind, "doc_id": op.source_id}
                sample |= {"filter": op.filter, "change": op.payload}
                self.summary.samples.append(sample)
                self.log.write_log("would write", sample)

    def _commit_unit(self) -> None:
        """The batch is written: log it, then checkpoint it (dry run: just count it)."""
        self.log.commit()
        if not self.config.dry_run:
            changelog.save_checkpoint(
                self.database,
                self.script.name,
                self.run_index,
                checkpoint={"after": self.last_done} if self.has_done else None,
                batch=self.batch_no,
                increments={"processed": self._unit_processed, "errors": self._unit_errors},
            )
        self.summary.processed += self._unit_processed
        self.summary.operations.merge(self._unit_ops)
        self.summary.results.merge(self._unit_results)
        self._reset_unit()

    def _reset_unit(self) -> None:
        self._unit_processed = self._unit_errors = 0
        self._unit_ops, self._unit_results = Tally(), Tally()

    def _finish_quietly(self, status: str, reason: str) -> None:
        """Record how a run that raised ended, if it got as far as starting (best effort)."""
        if self.run_index < 0:
            return
        try:
            self._finish(status, reason)
        except Exception:  # the server may be what failed; `status` then shows it interrupted
            self.summary.status = status

    def _finish(self, status: str, reason: str | None) -> None:
        self.summary.status = status
        self.summary.stop_reason = self.summary.stop_reason or reason
        fields = {
            "operations": self.summary.operations.as_rows(),
            "results": self.summary.results.as_rows(),
            "failed_documents": [{"_id": e.doc_id, "error": e.error} for e in self.summary.errors],
            "stop_reason": self.summary.stop_reason,
        }
        changelog.finish_run(self.database, self.script.name, self.run_index, status, fields)
