"""Benchmark: `ishan migrate` against per-document writes and a hand-written bulk loop.

On one server, in one run, over the same N documents (default 50,000) and the same callback:
  (a) the seed's way: one `update_one` round trip per document (timed on the first
      --seed-sample documents: its rate is per document, and a full pass takes minutes);
  (b) `ishan migrate` with that callback, with before-images (default) and with --no-backup;
  (c) hand-written pymongo: one `bulk_write` per 1,000 documents (the practical limit).
Each round runs (c) and both (b)s in rotating order; the table gives median docs/s and the
median of each round's time ratio to that round's (c) (this machine is shared: rounds vary).
Then the peak Python memory of (b) at N/10 and N documents (tracemalloc, untimed). Starts
its own `secantusd-py` (from the `test` extra) unless --uri names a server.

    .venv/bin/python bench/migrate.py [--docs 50000] [--repeat 3] [--seed-sample 5000] [--uri mongodb://...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.migrate.server import secantus_server

CALLBACK = """
primary = "users"
collections = ["users"]


def migrate(doc, users, write_log):
    users.update_one(
        {"_id": doc["_id"]},
        {"$set": {"full_name": doc["first"] + " " + doc["last"]}, "$inc": {"visits": 1}},
    )
"""


def migrate(doc: dict[str, Any], users: Any, write_log: Callable[..., None]) -> None:
    """The same callback as CALLBACK, for the non-ishan variants."""
    users.update_one(
        {"_id": doc["_id"]},
        {"$set": {"full_name": doc["first"] + " " + doc["last"]}, "$inc": {"visits": 1}},
    )


def seed(database: Any, count: int) -> None:
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
    for name in ("_ishan_migrations", "_ishan_backup", "_ishan_locks"):
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
    backup: bool, workdir: Path, limit: int | None = None
) -> Callable[[Any, str, int], float]:
    script = workdir / "bench_full_name.py"
    script.write_text(CALLBACK)

    def run(database: Any, uri: str, count: int) -> float:
        reset_ishan(database)
        config = RunConfig(script=script, backup=backup, log_dir=workdir / "logs", limit=limit)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50_000, help="documents (default 50,000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of (b) and (c) (median)")
    parser.add_argument(
        "--seed-sample", type=int, default=5_000, help="documents (a) updates (default 5,000)"
    )
    parser.add_argument("--uri", help="use this server instead of starting secantusd-py")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        nullcontext(args.uri) if args.uri else secantus_server() as base,
    ):
        workdir = Path(tmp)
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(base)
        database = client["ishan_bench"]
        print(f"server: {base.split('@')[-1]}  documents: {args.docs:,}  rounds: {args.repeat}")
        seed(database, args.docs)
        variants: dict[str, Callable[[Any, str, int], float]] = {
            BASELINE: hand_bulk,
            "(b) ishan migrate (backups, default)": ishan_variant(True, workdir),
            "(b) ishan migrate --no-backup": ishan_variant(False, workdir),
        }
        rates: dict[str, list[float]] = {name: [] for name in variants}
        ratios: dict[str, list[float]] = {name: [] for name in variants}
        seed_name = "(a) per-document update_one (seed)"
        for round_no in range(args.repeat):
            names = list(variants)
            names = names[round_no % len(names) :] + names[: round_no % len(names)]  # rotate
            for name in names:
                rates[name].append(variants[name](database, base, args.docs))
            for name in variants:  # time relative to (c) in the same round
                ratios[name].append(rates[BASELINE][-1] / rates[name][-1])
            short = {BASELINE: "(c)", "(b) ishan migrate --no-backup": "(b) no-backup"}
            line = ", ".join(f"{short.get(n, '(b)')} {rates[n][-1]:,.0f}" for n in variants)
            print(f"  round {round_no + 1} docs/s: {line}", flush=True)
            if round_no == 0:
                rates[seed_name] = [per_document(args.seed_sample)(database, base, args.docs)]
                ratios[seed_name] = [rates[BASELINE][-1] / rates[seed_name][0]]
        print()
        print(f"{'variant':<42} {'docs/s (median)':>16} {'time vs (c), median':>20}")
        for name in rates:
            rate, ratio = statistics.median(rates[name]), statistics.median(ratios[name])
            print(f"{name:<42} {rate:>16,.0f} {ratio:>19.2f}x")
        sampled = min(args.seed_sample, args.docs)
        print(f"(a) timed on the first {sampled:,} documents, in round 1, against round 1's (c)")
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
