"""Benchmark: `ishan migrate` against per-document writes and a hand-written bulk loop, and
with several workers on slow callbacks.

On one server, in one run, over the same N documents (default 50,000) and the same update:
  (a) the original project's way: one `update_one` round trip per document (timed on the
      first --per-document-sample documents: its rate is per document, and a full pass takes
      minutes);
  (b) `ishan migrate` with that callback, with before-images (default) and with --no-backup;
  (c) hand-written pymongo: one `bulk_write` per 1,000 documents, no wait (the baseline);
  (d) `ishan migrate --workers 1, 4, 16` with a callback that waits 2 ms per document first
      (an external call);
  (e) `ishan migrate --workers 1, 2` with a callback that does about 1 ms of Python work per
      document first (calibrated at start).
Each round runs (b)-(e) in rotating order, each right after a run of (c): this machine is
shared and its load drifts, so each row is compared with the (c) measured next to it. The
table gives median docs/s and the median of those ratios. Then the peak Python memory of (b)
at N/10 and N documents (tracemalloc, untimed). Starts its own `secantusd-py` (from the
`test` extra) unless --uri (or ISHAN_TEST_MONGODB_URI) names a server.

    .venv/bin/python -m bench.migrate [--docs 50000] [--repeat 1] [--per-document-sample 5000]
        [--uri mongodb://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pymongo
from pymongo import UpdateOne

from ishan_tools.migrate import ConnectionConfig, RunConfig, run_migration
from tests.harness.mongo_server import secantus_server

CALLBACK = """
primary = "users"
collections = ["users"]


def migrate(doc, users, write_log):
    users.update_one(
        {"_id": doc["_id"]},
        {"$set": {"full_name": doc["first"] + " " + doc["last"]}, "$inc": {"visits": 1}},
    )
"""


WAITING = """
import time

primary = "users"
collections = ["users"]


def migrate(doc, users, write_log):
    time.sleep(0.002)  # an external call
    users.update_one(
        {"_id": doc["_id"]},
        {"$set": {"full_name": doc["first"] + " " + doc["last"]}, "$inc": {"visits": 1}},
    )
"""

BUSY = """
primary = "users"
collections = ["users"]


def migrate(doc, users, write_log):
    total = 0
    for i in range(ROUNDS):  # about 1 ms of Python work
        total += i * i % 7
    users.update_one(
        {"_id": doc["_id"]},
        {"$set": {"full_name": doc["first"] + " " + doc["last"], "work": total}},
    )
"""


def busy_rounds(target_s: float = 0.001) -> int:
    """Loop rounds that take about `target_s` here (the fastest of a few tries)."""
    rounds = 20_000
    best = min(_timed(rounds) for _ in range(5))
    return max(int(rounds * target_s / best), 1)


def _timed(rounds: int) -> float:
    started = time.perf_counter()
    total = 0
    for i in range(rounds):
        total += i * i % 7
    return time.perf_counter() - started


def migrate(doc: dict[str, Any], users: Any, write_log: Callable[..., None]) -> None:
    """The same callback as CALLBACK, for the non-ishan variants."""
    users.update_one(
        {"_id": doc["_id"]},
        {"$set": {"full_name": doc["first"] + " " + doc["last"]}, "$inc": {"visits": 1}},
    )


def insert_users(database: Any, count: int) -> None:
    database.users.drop()
    chunk = 5000
    for start in range(0, count, chunk):
        database.users.insert_many(
            [
                {
                    "_id": i,
                    "first": f"First{i % 97}",
                    "last": f"Last{i}",
                    "visits": 0,
                    "pad": "x" * 64,
                }
                for i in range(start, min(start + chunk, count))
            ]
        )


def reset_ishan(database: Any) -> None:
    for name in (
        "_ishan_migrations",
        "_ishan_backup",
        "_ishan_locks",
        "_ishan_partitions",
        "_ishan_participants",
    ):
        database[name].drop()


def per_document(sample: int) -> Callable[[Any, str, int], float]:
    """(a) over the first `sample` documents: one round trip each, so the rate holds for all."""

    def run(database: Any, uri: str, count: int) -> float:
        done = 0
        started = time.perf_counter()
        for doc in database.users.find().sort("_id", 1).limit(min(sample, count)):
            migrate(doc, database.users, lambda *a: None)
            done += 1
        return done / (time.perf_counter() - started)

    return run


def hand_bulk(database: Any, uri: str, count: int) -> float:
    started = time.perf_counter()
    requests = []
    for doc in database.users.find().sort("_id", 1).batch_size(1000):
        requests.append(
            UpdateOne(
                {"_id": doc["_id"]},
                {"$set": {"full_name": doc["first"] + " " + doc["last"]}, "$inc": {"visits": 1}},
            )
        )
        if len(requests) == 1000:
            database.users.bulk_write(requests, ordered=True)
            requests = []
    if requests:
        database.users.bulk_write(requests, ordered=True)
    return count / (time.perf_counter() - started)


def ishan_variant(
    backup: bool,
    workdir: Path,
    limit: int | None = None,
    workers: int = 1,
    source: str = CALLBACK,
    name: str = "bench_full_name",
) -> Callable[[Any, str, int], float]:
    script = workdir / f"{name}.py"
    script.write_text(source)

    def run(database: Any, uri: str, count: int) -> float:
        reset_ishan(database)
        config = RunConfig(
            script=script, backup=backup, log_dir=workdir / "logs", limit=limit, workers=workers
        )
        started = time.perf_counter()
        summary = run_migration(ConnectionConfig(uri=uri, db=database.name), config)
        elapsed = time.perf_counter() - started
        assert summary.processed == count, summary.as_dict()
        return count / elapsed

    return run


def peak_memory_mib(database: Any, uri: str, count: int, workdir: Path) -> float:
    """Peak traced Python memory of an ishan run over the first `count` documents."""
    run = ishan_variant(True, workdir, limit=count)
    tracemalloc.start()
    run(database, uri, count)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


BASELINE = "(c) hand-written bulk_write per 1,000"
BACKUP = "(b) ishan migrate (backups, default)"
WAIT = "(d) 2 ms wait, --workers {}"
CPU = "(e) ~1 ms CPU, --workers {}"
PER_DOCUMENT = "(a) per-document update_one (original)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50_000, help="documents (default 50,000)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (b)-(e) (median)")
    parser.add_argument(
        "--per-document-sample",
        type=int,
        default=5_000,
        help="documents (a) updates (default 5,000)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="TEXT",
        help="run only the rows whose name contains TEXT (repeatable; (c) always runs)",
    )
    parser.add_argument(
        "--uri",
        default=os.environ.get("ISHAN_TEST_MONGODB_URI"),
        help="use this server instead of starting secantusd-py (default: ISHAN_TEST_MONGODB_URI)",
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        nullcontext(args.uri) if args.uri else secantus_server() as base,
    ):
        workdir = Path(tmp)
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(base)
        database = client["ishan_bench"]
        rounds = busy_rounds()
        print(
            f"server: {base.split('@')[-1]}  documents: {args.docs:,}  rounds: {args.repeat}  "
            f"cores: {os.cpu_count()}  load: {os.getloadavg()[0]:.1f}  busy loop: {rounds:,}"
        )
        insert_users(database, args.docs)
        busy = BUSY.replace("ROUNDS", str(rounds))
        variants: dict[str, Callable[[Any, str, int], float]] = {
            BASELINE: hand_bulk,
            BACKUP: ishan_variant(True, workdir),
            "(b) ishan migrate --no-backup": ishan_variant(False, workdir),
        }
        for workers in (1, 4, 16):
            variants[WAIT.format(workers)] = ishan_variant(
                True, workdir, workers=workers, source=WAITING, name="bench_wait"
            )
        for workers in (1, 2):
            variants[CPU.format(workers)] = ishan_variant(
                True, workdir, workers=workers, source=busy, name="bench_busy"
            )
        if args.only:
            variants = {
                name: run
                for name, run in variants.items()
                if name == BASELINE or any(text in name for text in args.only)
            }
        rates: dict[str, list[float]] = {name: [] for name in variants}
        ratios: dict[str, list[float]] = {name: [] for name in variants}
        ratios[BASELINE] = [1.0]
        for round_no in range(args.repeat):
            names = [name for name in variants if name != BASELINE]
            names = names[round_no % len(names) :] + names[: round_no % len(names)]  # rotate
            if round_no == 0 and (not args.only or any(t in PER_DOCUMENT for t in args.only)):
                names.append(PER_DOCUMENT)
                variants[PER_DOCUMENT] = per_document(args.per_document_sample)
                rates[PER_DOCUMENT], ratios[PER_DOCUMENT] = [], []
            for name in names:
                rates[BASELINE].append(hand_bulk(database, base, args.docs))
                rates[name].append(variants[name](database, base, args.docs))
                ratios[name].append(rates[name][-1] / rates[BASELINE][-1])
                print(
                    f"  round {round_no + 1}: (c) {rates[BASELINE][-1]:,.0f}, then {name}: "
                    f"{rates[name][-1]:,.0f} docs/s ({os.getloadavg()[0]:.1f} load)",
                    flush=True,
                )
        median = {name: statistics.median(values) for name, values in rates.items()}
        ratio = {name: statistics.median(values) for name, values in ratios.items()}
        print()
        print(f"{'variant':<42} {'docs/s (median)':>16} {'docs/s vs (c)':>14} {'time vs (c)':>12}")
        for name in rates:
            print(
                f"{name:<42} {median[name]:>16,.0f} {ratio[name]:>13.2f}x {1 / ratio[name]:>11.2f}x"
            )
        sampled = min(args.per_document_sample, args.docs)
        if PER_DOCUMENT in rates:
            print(f"(a) timed on the first {sampled:,} documents, in round 1; (c): every run of it")
        print()
        targets: list[tuple[str, float, bool]] = []
        waits = [WAIT.format(w) for w in (4, 16) if WAIT.format(w) in ratio]
        if waits:
            best = max(waits, key=lambda name: ratio[name])
            text = f"best parallel 2 ms row ({best.rsplit(' ', 1)[1]} workers) >= 0.60 of (c)"
            targets.append((text, ratio[best], ratio[best] >= 0.60))
        if CPU.format(1) in ratio and CPU.format(2) in ratio:
            speedup = median[CPU.format(2)] / median[CPU.format(1)]
            against = ratio[CPU.format(2)] / ratio[CPU.format(1)]
            text = f"CPU-bound, 2 workers vs 1 >= 1.25x (each against its own (c): {against:.2f})"
            targets.append((text, speedup, speedup >= 1.25))
        if BACKUP in ratio:
            slower = 1 / ratio[BACKUP]
            targets.append(("1-worker row (b) time <= 1.35x of (c)", slower, slower <= 1.35))
        for text, value, met in targets:
            print(f"target: {text}: {value:.2f} -> {'MET' if met else 'MISSED'}")
        small = max(args.docs // 10, 1)
        memory_small = peak_memory_mib(database, base, small, workdir)
        memory_full = peak_memory_mib(database, base, args.docs, workdir)
        print()
        print("peak Python memory of (b) with backups (tracemalloc):")
        print(f"  {small:>9,} documents: {memory_small:6.1f} MiB")
        print(f"  {args.docs:>9,} documents: {memory_full:6.1f} MiB")
        client.drop_database(database.name)
        client.close()


if __name__ == "__main__":
    main()
