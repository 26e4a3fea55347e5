"""Benchmark: `ishan migrate` against per-document writes and a hand-written bulk loop.

On one server, in one run, over the same N documents (default 50,000) and the same callback:
  (a) the seed's way: one `update_one` round trip per document;
  (b) `ishan migrate` with that callback, with before-images (default) and with --no-backup;
  (c) hand-written pymongo: one `bulk_write` per 1,000 documents (the practical limit).
Prints docs/s (median of --repeat runs), ratios to (c), and the peak Python memory of (b)
at N/10 and N documents (tracemalloc, in an untimed pass). Starts its own `secantusd-py`
(from the `test` extra) unless --uri names a server.

    .venv/bin/python bench/migrate.py [--docs 50000] [--repeat 3] [--uri mongodb://...]
"""

from __future__ import annotations

import argparse
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymongo
from pymongo import UpdateOne

from ishan_tools.migrate import ConnectionConfig, RunConfig, run_migration

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


@contextmanager
def secantus() -> Iterator[str]:
    """Start `secantusd-py` on 127.0.0.1, port 0; yield its URI; stop it."""
    exe = Path(sys.executable).with_name("secantusd-py")
    command = [str(exe), "--host", "127.0.0.1", "--port", "0", "--storage-path", ":memory:"]
    process = subprocess.Popen(
        [*command, "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in process.stdout or []], daemon=True
    ).start()
    try:
        while True:
            match = re.search(r"secantus listening on 127\.0\.0\.1:(\d+)", lines.get(timeout=60))
            if match:
                yield f"mongodb://127.0.0.1:{match.group(1)}"
                return
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


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


def per_document(database: Any, uri: str, count: int) -> float:
    started = time.perf_counter()
    for doc in database.users.find().sort("_id", 1):
        migrate(doc, database.users, lambda *a: None)
    return count / (time.perf_counter() - started)


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


def ishan_variant(backup: bool, workdir: Path) -> Callable[[Any, str, int], float]:
    script = workdir / "bench_full_name.py"
    script.write_text(CALLBACK)

    def run(database: Any, uri: str, count: int) -> float:
        reset_ishan(database)
        config = RunConfig(script=script, backup=backup, log_dir=workdir / "logs")
        started = time.perf_counter()
        summary = run_migration(ConnectionConfig(uri=uri, db=database.name), config)
        elapsed = time.perf_counter() - started
        assert summary.status == "applied" and summary.processed == count, summary.as_dict()
        return count / elapsed

    return run


def peak_memory_mib(database: Any, uri: str, count: int, workdir: Path) -> float:
    seed(database, count)
    reset_ishan(database)
    run = ishan_variant(True, workdir)
    tracemalloc.start()
    run(database, uri, count)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50_000, help="documents (default 50,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (b) and (c) (median)")
    parser.add_argument("--seed-repeat", type=int, default=1, help="runs of (a) (slow)")
    parser.add_argument("--uri", help="use this server instead of starting secantusd-py")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        nullcontext(args.uri) if args.uri else secantus() as base,
    ):
        workdir = Path(tmp)
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(base)
        database = client["ishan_bench"]
        print(f"server: {base.split('@')[-1]}  documents: {args.docs:,}  repeat: {args.repeat}")
        seed(database, args.docs)
        variants: dict[str, tuple[Callable[[Any, str, int], float], int]] = {
            "(c) hand-written bulk_write per 1,000": (hand_bulk, args.repeat),
            "(b) ishan migrate (backups, default)": (ishan_variant(True, workdir), args.repeat),
            "(b) ishan migrate --no-backup": (ishan_variant(False, workdir), args.repeat),
            "(a) per-document update_one (seed)": (per_document, args.seed_repeat),
        }
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for round_no in range(max(args.repeat, args.seed_repeat)):
            for name, (variant, times) in variants.items():
                if round_no < times:
                    rates[name].append(variant(database, base, args.docs))
                    print(
                        f"  round {round_no + 1}: {name}: {rates[name][-1]:,.0f} docs/s", flush=True
                    )
        baseline = statistics.median(rates["(c) hand-written bulk_write per 1,000"])
        print()
        print(f"{'variant':<42} {'docs/s (median)':>16} {'time vs (c)':>12}")
        for name, values in rates.items():
            rate = statistics.median(values)
            print(f"{name:<42} {rate:>16,.0f} {baseline / rate:>11.2f}x")
        small = max(args.docs // 10, 1)
        memory_small = peak_memory_mib(database, base, small, workdir)
        memory_full = peak_memory_mib(database, base, args.docs, workdir)
        print()
        print("peak Python memory of (b), tracemalloc:")
        print(f"  {small:>9,} documents: {memory_small:6.1f} MiB")
        print(f"  {args.docs:>9,} documents: {memory_full:6.1f} MiB")
        client.drop_database(database.name)
        client.close()


@contextmanager
def nullcontext(value: str) -> Iterator[str]:
    yield value


if __name__ == "__main__":
    main()
