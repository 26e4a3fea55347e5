"""Running a migration over one partition: an `_id`-sorted cursor, a callback per document,
a bulk write per batch.

Exactly once: before a flush's writes, the before-images of everything it can touch are saved
under the partition and the batch's number; after the batch, the partition's checkpoint (last
`_id` done) and `done_batch` are recorded in one update. Whoever takes the partition next
(a resumed run, or another worker after this one died) first restores the images of a batch
numbered above `done_batch` (one cut short), then redoes that batch. With `--no-backup`
nothing is restored, so a batch cut short is written twice (at least once).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.errors import BulkWriteError, CursorNotFound

from ishan_tools.migrate import backup, changelog
from ishan_tools.migrate.buffer import BufferedCollection, PendingOp, WriteBuffer, id_equality
from ishan_tools.migrate.config import RunSettings
from ishan_tools.migrate.context import MigrationContext
from ishan_tools.migrate.logs import RunLog
from ishan_tools.migrate.query import primary_query
from ishan_tools.migrate.report import SAMPLE_SIZE, RunSummary, Tally
from ishan_tools.migrate.script import (
    MigrationScript,
    check_collection_name,
    exit_message,
    one_line,
)

if TYPE_CHECKING:  # the parallel layer sits above the runner: it drives it through these
    from ishan_tools.migrate.parallel.board import Board
    from ishan_tools.migrate.parallel.participants import Heartbeat
    from ishan_tools.migrate.parallel.partitions import Partition
    from ishan_tools.migrate.parallel.throttle import Throttle

Progress = Callable[[int, int | None], None]
RAW = CodecOptions(document_class=RawBSONDocument)
DONE, FAILED, STOPPED = "done", "failed", "stopped"
"""How `run_partition` ended: all written; a document failed; the run asked to stop."""


class _WriteFailure(BaseException):
    """A bulk write the server refused; a BaseException so a callback's `except` can't eat it."""

    def __init__(self, doc_id: Any, message: str) -> None:
        super().__init__(message)
        self.doc_id = doc_id
        self.message = message


class Runner:
    """One participant's engine: runs partitions one after another, counting into `summary`.

    `board` and `heartbeat` are None in a dry run, which records nothing.
    """

    def __init__(
        self,
        database: Any,
        script: MigrationScript,
        settings: RunSettings,
        log: RunLog,
        summary: RunSummary,
        *,
        board: Board | None = None,
        heartbeat: Heartbeat | None = None,
        after_batch: Callable[[int], None] | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.database, self.script, self.settings = database, script, settings
        self.log, self.summary = log, summary
        self.board, self.heartbeat, self.after_batch = board, heartbeat, after_batch
        self.throttle = throttle  # --max-rate: tokens per batch, smaller batches while limited
        self.dry_run = board is None
        self.run_id = settings.run_id
        self.batch_size = settings.batch_size
        self.buffer = WriteBuffer(self._flush)
        self._collections: dict[str, BufferedCollection] = {}
        self._callback_collections: list[Any] | None = None
        self.context = MigrationContext(
            migration=script.name,
            run_id=self.run_id,
            dry_run=self.dry_run,
            collection=self.collection,
            log=self.log.write_log,
        )
        self.partition: Partition | None = None
        self.batch_no = self.flush_no = 0
        self.last_done: Any = None
        self.has_done = self.stopped = self._split_wanted = False
        self._known: dict[Any, RawBSONDocument] | None = None
        self._batch_keys: set[Any] = set()
        self._primary_clean = script.projection is None
        self._inserted_primary: set[Any] = set()
        if not self.dry_run and settings.mode == "resume":
            self._inserted_primary = backup.inserted_ids(database, script.name, script.primary)
        self._reset_unit()

    def collection(self, name: str) -> BufferedCollection:
        if name not in self._collections:
            check_collection_name(name, "collection")
            self._collections[name] = BufferedCollection(self.database[name], self.buffer)
        return self._collections[name]

    # -- one partition ---------------------------------------------------------------------

    def run_partition(self, partition: Partition) -> str:
        """Restore the partition's batch cut short, then migrate the rest of it (DONE, FAILED
        or STOPPED); answers a split request at a batch boundary by cutting the partition."""
        self.partition, self.stopped = partition, False
        if self.board is not None and self.settings.backup:
            self.summary.restored += backup.restore_after(
                self.database, self.script.name, partition.id, partition.done_batch
            )
        self.batch_no = partition.done_batch
        self.has_done = partition.checkpoint is not None
        self.last_done = partition.checkpoint["after"] if partition.checkpoint else None
        while True:
            batches = self._batches(partition.query(self.script.filter))
            try:
                for batch in batches:
                    if not self._process(batch):
                        return FAILED
                    if self.after_batch is not None:
                        self.after_batch(len(batch))
                    if self.heartbeat is not None and self.heartbeat.stop_requested.is_set():
                        return STOPPED
                    if self._split_wanted and self._split(partition):
                        break  # reopen the cursor over the shrunk range
                else:
                    return DONE
            finally:
                batches.close()

    def abandon(self) -> None:
        """Forget the batch in progress (its lease was lost: its next worker redoes it)."""
        self.buffer.take()
        self.log.discard()
        self._reset_unit()

    def _split(self, partition: Partition) -> bool:
        self._split_wanted = False
        assert self.board is not None
        return self.board.split(partition, self.database, self.script.primary, self.script.filter)

    def _batches(self, query: dict[str, Any]) -> Generator[list[RawBSONDocument], None, None]:
        """Batches from one long-lived `_id`-sorted cursor (reopened if the server drops it)."""
        primary = self.database[self.script.primary].with_options(codec_options=RAW)
        batch: list[RawBSONDocument] = []
        last_seen: list[Any] = []
        cursor = primary.find(query, self.script.projection).sort("_id", 1)
        cursor = cursor.batch_size(self.batch_size)
        size = self._batch_cap()
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
                batch.append(document)
                last_seen[:] = [document["_id"]]
                if len(batch) >= size:
                    yield batch
                    batch = []
                    size = self._batch_cap()
            if batch:
                yield batch
        finally:
            cursor.close()

    def _batch_cap(self) -> int:
        if self.throttle is None:
            return self.batch_size
        return self.throttle.batch_cap(self.batch_size)

    # -- one batch -------------------------------------------------------------------------

    def _process(self, raw_batch: list[RawBSONDocument]) -> bool:
        """Run the callbacks of one batch, write it, checkpoint it; False: stop the run."""
        self.batch_no += 1
        self.flush_no = 0
        passed = len(raw_batch)
        codec = self.database.codec_options
        docs = [bson.decode(raw.raw, codec_options=codec) for raw in raw_batch]
        if self._inserted_primary:  # documents this migration added to its own collection
            kept = [(d, r) for d, r in zip(docs, raw_batch, strict=True) if not self._ours(d)]
            docs, raw_batch = [d for d, _ in kept], [r for _, r in kept]
        if self.throttle is not None:
            self.throttle.take(len(docs))
        self._batch_keys = {backup.id_key(doc["_id"]) for doc in docs}
        use_known = not self.dry_run and self.settings.backup and self._primary_clean
        self._known = None
        if use_known:
            self._known = {
                backup.id_key(doc["_id"]): raw for doc, raw in zip(docs, raw_batch, strict=True)
            }
        try:
            self._run_callbacks(docs)
            self._flush(None)
        except _WriteFailure as failure:
            self.buffer.take()
            self.log.discard()
            self._reset_unit()
            if self.settings.backup:
                self._restore_flushes(0)
            if not (self.settings.backup and self.settings.continue_on_error):
                return self._stop_on_write_failure(failure)
            self._retry_one_by_one(docs)
        self._unit_passed = passed
        self._commit_unit()
        return not self.stopped

    def _stop_on_write_failure(self, failure: _WriteFailure) -> bool:
        self.summary.add_error(failure.doc_id, failure.message)
        self.log.event("error", failure.message, failure.doc_id)
        undone = "undone" if self.settings.backup else "possibly partly written (--no-backup)"
        self.summary.stop_reason = (
            f"write failed for document {failure.doc_id!r}: {failure.message}; "
            f"batch {self.batch_no} was {undone}"
        )
        self.stopped = True
        return False

    def _run_callbacks(self, docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            if not self._call(doc) and not self.settings.continue_on_error:
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
                        self.collection(n) for n in self.script.collections
                    ]
                self.script.migrate(doc, *self._callback_collections, self.log.write_log)
        except (Exception, SystemExit) as exc:  # sys.exit() in a callback fails its document
            self.buffer.discard_since(mark)
            message = exit_message(exc) if isinstance(exc, SystemExit) else one_line(exc)
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
                self._restore_flushes(first_flush)
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
        if self.dry_run:
            self._sample(taken)
            return
        assert self.partition is not None
        if self.heartbeat is not None:
            self.heartbeat.check()  # never write under a lease that may have run out
        images = []
        if self.settings.backup:  # before _track_primary: it retires the cursor's copies
            images = backup.capture(self.database, taken, self._known, self.script.primary)
        self._track_primary(taken.get(self.script.primary, []))
        if images:  # the sequence number is taken after reading the images, before writing
            seq = changelog.next_image_seq(self.database, self.script.name)
            key = backup.FlushKey(
                self.script.name, self.partition.id, self.batch_no, self.flush_no, seq
            )
            backup.save(self.database, key, images)
        self.flush_no += 1
        for name, ops in taken.items():
            if self.heartbeat is not None:  # saving the images may have stalled (a partition)
                self.heartbeat.check()
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

    def _restore_flushes(self, first_flush: int) -> None:
        assert self.partition is not None
        backup.restore_flushes(
            self.database, self.script.name, self.partition.id, self.batch_no, first_flush
        )

    def _commit_unit(self) -> None:
        """The batch is written: log it, then checkpoint it (dry run: just count it)."""
        self.log.commit()
        if self.board is not None:
            assert self.partition is not None
            self._split_wanted = self.board.checkpoint(
                self.partition,
                after=self.last_done,
                has_after=self.has_done,
                batch=self.batch_no,
                passed=self._unit_passed,
                processed=self._unit_processed,
                errors=self._unit_errors,
                lease_s=self.settings.lease_s,
                run_id=self.run_id,
            )
        self.summary.processed += self._unit_processed
        self.summary.operations.merge(self._unit_ops)
        self.summary.results.merge(self._unit_results)
        self._reset_unit()

    def _reset_unit(self) -> None:
        self._unit_processed = self._unit_errors = self._unit_passed = 0
        self._unit_ops, self._unit_results = Tally(), Tally()
