"""A worker: takes partitions until none is left, asks for splits while it would idle.

`work` runs in the process that starts a one-worker run, in one that joins with `--join`,
and in each local worker process of `--workers N`, which the supervisor starts as
`python -m ishan_tools.migrate.parallel.worker SPEC INDEX` (SPEC: a JSON file with the connection,
the script and the run to join; the URI never appears on a command line).
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymongo.errors import OperationFailure, PyMongoError

from ishan_tools.errors import IshanError, MigrationError
from ishan_tools.migrate import lock
from ishan_tools.migrate.changelog import FAILED, INTERRUPTED
from ishan_tools.migrate.config import RunSettings
from ishan_tools.migrate.connection import server_message
from ishan_tools.migrate.logs import RunLog
from ishan_tools.migrate.parallel import participants, session
from ishan_tools.migrate.parallel.board import Board, LeaseLost
from ishan_tools.migrate.parallel.participants import Heartbeat
from ishan_tools.migrate.parallel.throttle import Throttle
from ishan_tools.migrate.report import RunSummary
from ishan_tools.migrate.runner import DONE, Progress, Runner
from ishan_tools.migrate.script import MigrationScript, one_line

if TYPE_CHECKING:
    from ishan_tools.migrate.metrics import RunMetrics

INTERRUPTED_REASON = "interrupted (Ctrl-C): continue with --resume"


class ServerLost(MigrationError):
    """The server stopped answering mid-run; leaving the run cleanly is not possible."""


def work(
    database: Any,
    script: MigrationScript,
    settings: RunSettings,
    member: dict[str, Any],
    log: RunLog,
    progress: Progress | None = None,
    *,
    stops_run: bool = False,
    metrics: RunMetrics | None = None,
) -> RunSummary:
    """Work in the run until its partitions are done or it is asked to stop; this
    participant's summary. `stops_run`: a Ctrl-C here stops every participant; `metrics`:
    the figures to update as it goes."""
    summary = RunSummary(
        script.name,
        settings.run_id,
        "running",
        dry_run=False,
        resumed=settings.mode == "resume",
        backup=settings.backup,
    )
    summary.log_path = log.path
    board = Board(database, script.name, settings.plan, member)
    heartbeat = Heartbeat(
        database, settings.run_id, member["id"], board, settings.lease_s, settings.lock_ttl_s
    )
    done_before, total = board.progress() if progress is not None else (0, 0)
    passed = 0
    holding: list[str | None] = [None]

    if metrics is not None:
        script = metrics.timed(script)

    def after_batch(count: int) -> None:
        nonlocal passed
        passed += count
        if metrics is not None:
            metrics.batch_done(summary, count)
            metrics.rate_limit.set(limit.rate)  # as this worker last read it (throttle: live)
        participants.report(database, member["id"], summary, holding[0])
        if progress is not None:
            progress(done_before + passed, total)

    limit = Throttle(database, script.name, settings.run_id, stop=heartbeat.stop_requested)
    if metrics is not None:
        metrics.rate_limit.set(limit.rate)
    runner = Runner(
        database,
        script,
        settings,
        log,
        summary,
        board=board,
        heartbeat=heartbeat,
        after_batch=after_batch,
        throttle=limit,
    )
    started = time.perf_counter()
    heartbeat.start()
    summary.status = INTERRUPTED  # this participant's own end, for its log's summary line
    try:
        _take_partitions(
            database, settings, board, heartbeat, runner, log, holding, member, metrics
        )
        stopped = heartbeat.stop_requested.is_set()
        summary.status = FAILED if runner.stopped else INTERRUPTED if stopped else DONE
    except KeyboardInterrupt:
        summary.stop_reason = INTERRUPTED_REASON
        if stops_run:
            _stop_quietly(database, settings, INTERRUPTED, INTERRUPTED_REASON)
        raise
    except PyMongoError as exc:
        if isinstance(exc, OperationFailure):  # refused, not lost: the run fails
            summary.status, summary.stop_reason = FAILED, server_message(exc)
            _stop_quietly(database, settings, FAILED, summary.stop_reason)
            raise
        summary.stop_reason = f"{type(exc).__name__}: {exc}"
        reason = str(exc).split(",")[0].split(" (configured")[0]
        raise ServerLost(
            f"lost the server mid-run ({reason}); {script.name} is left interrupted: "
            "continue with --resume"
        ) from exc
    except Exception as exc:
        summary.status, summary.stop_reason = FAILED, one_line(exc)
        _stop_quietly(database, settings, FAILED, summary.stop_reason)
        raise
    finally:
        heartbeat.close()
        summary.elapsed_s = time.perf_counter() - started
        if limit.rate or limit.waited_s:
            log.event("throttle", {"max_rate": limit.rate, "waited_s": round(limit.waited_s, 3)})
        log.event("summary", summary.as_dict())
        log.close()
    return summary


def _take_partitions(
    database: Any,
    settings: RunSettings,
    board: Board,
    heartbeat: Heartbeat,
    runner: Runner,
    log: RunLog,
    holding: list[str | None],
    member: dict[str, Any],
    metrics: RunMetrics | None = None,
) -> None:
    poll = min(0.5, settings.lease_s / 4)
    while not heartbeat.stop_requested.is_set():
        claimed = board.claim(settings.lease_s)
        if claimed is None:
            if board.unfinished() == 0:
                return
            board.request_split(2 * settings.batch_size)
            heartbeat.stop_requested.wait(poll)
            continue
        partition, taken_over = claimed
        if taken_over:
            log.event(
                "took over", {"partition": partition.label, "done_batch": partition.done_batch}
            )
        heartbeat.hold(partition.id)
        holding[0] = partition.label
        if metrics is not None:
            metrics.partition_started(taken_over)
        participants.holding(database, member["id"], partition.label)
        try:
            outcome = runner.run_partition(partition)
        except LeaseLost:
            runner.abandon()
            log.event("lost lease", {"partition": partition.label})
            continue
        except BaseException:
            with contextlib.suppress(Exception):
                board.release(partition)
            raise
        finally:
            heartbeat.hold(None)
            holding[0] = None
            if metrics is not None:
                metrics.partition_ended()
        if outcome == DONE:
            board.finish(partition)
            continue
        board.release(partition)
        if runner.stopped:  # a document failed: the whole run stops
            reason = runner.summary.stop_reason or "a document failed"
            lock.request_stop(database, settings.run_id, FAILED, reason)
        return


def _stop_quietly(database: Any, settings: RunSettings, status: str, reason: str) -> None:
    with contextlib.suppress(Exception):  # the server may be what failed
        lock.request_stop(database, settings.run_id, status, reason)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """A local worker of `--workers N`: join the run named in SPEC, work, leave."""
    from ishan_tools.migrate.config import RunConfig
    from ishan_tools.migrate.connection import ConnectionConfig, connected
    from ishan_tools.migrate.metrics import worker_metrics
    from ishan_tools.migrate.script import load_script

    spec_path, index = (argv if argv is not None else sys.argv[1:])[:2]
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
        script = load_script(Path(spec["script"]))
        connection = ConnectionConfig(spec["uri"], spec["db"], spec["timeout_s"])
        config = RunConfig(script=script.path, backup=spec["backup"], join=True)
        with connected(connection) as database:
            # RunOver (exit 0) if the other workers finished the run before this one started
            settings = session.joinable(database, script, config, spec["run_id"])
            member = participants.new_member(participants.WORKER)
            log = RunLog(Path(spec["log_dir"]), script.name, settings.run_id, f"w{index}")
            session.enlist(database, script.name, settings, member, str(log.path))
            summary, closed = None, None
            try:
                metrics = worker_metrics(script.name)
                summary = work(database, script, settings, member, log, metrics=metrics)
            finally:
                if not isinstance(sys.exc_info()[1], ServerLost):
                    closed = session.leave(database, script.name, settings, member, summary)
            if closed is not None:  # this worker closed the run: its log states the run's end
                log.end(session.run_summary(database, script.name, settings, 1))
    except KeyboardInterrupt:
        return 130
    except session.RunOver:
        return 0
    except IshanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except PyMongoError as exc:  # what the supervisor reports: one line
        print(f"error: {server_message(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
