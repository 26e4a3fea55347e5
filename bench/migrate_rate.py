"""Benchmark: does `ishan migrate run --max-rate R` hold N documents to N / R seconds?

On one server, in one run, over the same N documents (default 20,000) and the callback of
`bench/migrate.py` (one update per document), for 1 and 4 workers: first the run without a
limit, in the batches the limit makes (rate / 4 documents): the baseline, how fast it goes
here, which must be well above R for the limit to be what sets the pace; then the run at
`--max-rate R` (default 500). Prints the expected time N / R, the measured time (the whole
run, the workers' start-up included) and their ratio, which should be within 10% (0.90-1.10).
The bucket starts full (one second's worth), so a run that keeps the limit exactly takes
(N - R) / R seconds: about 0.975 of N / R at the defaults. Also printed: the time from the
first worker's start (imported, connected) to the run's end, without the start-up of the
worker processes. First, the bucket alone: threads that only take tokens (one `Throttle`
each, as workers have), at --bucket-rate. Starts its own `secantusd-py` (from the `test`
extra) unless --uri (or ISHAN_TEST_MONGODB_URI) names a server.

    .venv/bin/python -m bench.migrate_rate [--docs 20000] [--rate 500] [--workers 1 4]
        [--repeat 1] [--uri mongodb://...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pymongo

from bench.migrate import CALLBACK, insert_users, reset_ishan
from ishan_tools.migrate import ConnectionConfig, RunConfig, run_migration
from ishan_tools.migrate.config import DEFAULT_BATCH_SIZE
from ishan_tools.migrate.parallel.throttle import THROTTLE, Throttle, batch_cap, open_bucket
from tests.harness.mongo_server import secantus_server


def timed_run(
    database: Any,
    uri: str,
    script: Path,
    workdir: Path,
    workers: int,
    rate: float | None,
    batch_size: int | None = None,
) -> tuple[float, float, float]:
    """Seconds of one run over every document: the whole run (from the call to the summary),
    from its first worker's start (it has imported and connected) to the run's end, and the
    longest time one worker waited for the limit (from the workers' logs)."""
    reset_ishan(database)
    database["_ishan_throttle"].drop()
    config = RunConfig(
        script=script,
        log_dir=workdir / "logs",
        workers=workers,
        max_rate=rate,
        force=True,
        batch_size=batch_size,
    )
    started = time.perf_counter()
    summary = run_migration(ConnectionConfig(uri=uri, db=database.name), config)
    elapsed = time.perf_counter() - started
    assert summary.status == "applied", summary.as_dict()
    record = database["_ishan_migrations"].find_one({"_id": script.stem}) or {}
    ended = record["runs"][-1]["ended_at"]
    ready = min(
        doc["started_at"] for doc in database["_ishan_participants"].find({"role": "worker"})
    )
    waited = [
        float(line["content"]["waited_s"])
        for path in summary.logs or [str(summary.log_path)]
        for line in map(json.loads, Path(path).read_text(encoding="utf-8").splitlines())
        if line["action"] == "throttle"
    ]
    return elapsed, (ended - ready).total_seconds(), max(waited, default=0.0)


def bucket_alone(database: Any, tokens: int, rate: float, takers: int) -> float:
    """Seconds for `takers` threads, each with its own `Throttle`, to take `tokens` tokens in
    all at `rate`, doing nothing else (the limit alone, without a migration)."""
    database[THROTTLE].drop()
    open_bucket(database, "bench_bucket", "bench", rate)

    def take(share: int) -> None:
        throttle = Throttle(database, "bench_bucket", "bench")
        while share > 0:
            count = min(throttle.batch_cap(DEFAULT_BATCH_SIZE), share)
            throttle.take(count)
            share -= count

    threads = [threading.Thread(target=take, args=(tokens // takers,)) for _ in range(takers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000, help="documents (default 20,000)")
    parser.add_argument("--rate", type=float, default=500.0, help="--max-rate (default 500)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4], help="default: 1 4")
    parser.add_argument("--repeat", type=int, default=1, help="limited runs per row (median)")
    parser.add_argument(
        "--bucket-rate",
        type=float,
        default=2000.0,
        help="rate of the bucket-alone check (default 2,000; 0: skip it)",
    )
    parser.add_argument(
        "--uri",
        default=os.environ.get("ISHAN_TEST_MONGODB_URI"),
        help="use this server instead of starting secantusd-py (default: ISHAN_TEST_MONGODB_URI)",
    )
    args = parser.parse_args()
    expected = args.docs / args.rate
    cap = batch_cap(args.rate, DEFAULT_BATCH_SIZE)
    with (
        tempfile.TemporaryDirectory() as tmp,
        nullcontext(args.uri) if args.uri else secantus_server() as base,
    ):
        workdir = Path(tmp)
        script = workdir / "bench_rate.py"
        script.write_text(CALLBACK)
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(base)
        database = client["ishan_bench_rate"]
        print(
            f"server: {base.split('@')[-1]}  documents: {args.docs:,}  --max-rate "
            f"{args.rate:g}  cores: {os.cpu_count()}  load: {os.getloadavg()[0]:.1f}"
        )
        if args.bucket_rate > 0:
            least = (args.docs - args.bucket_rate) / args.bucket_rate
            for takers in args.workers:
                alone = bucket_alone(database, args.docs, args.bucket_rate, takers)
                print(
                    f"  bucket alone, {takers} taker(s): {args.docs:,} tokens at "
                    f"{args.bucket_rate:g}/s in {alone:.2f}s (a full bucket, then the rate: "
                    f"{least:.2f}s)",
                    flush=True,
                )
        insert_users(database, args.docs)
        rows = []
        for workers in args.workers:
            free, _, _ = timed_run(database, base, script, workdir, workers, None)
            small, _, _ = timed_run(database, base, script, workdir, workers, None, cap)
            print(
                f"  --workers {workers}, no limit: {free:.1f}s, in batches of {cap}: {small:.1f}s",
                flush=True,
            )
            limited, working = [], []
            for _ in range(args.repeat):
                whole, ready, waited = timed_run(
                    database, base, script, workdir, workers, args.rate
                )
                limited.append(whole)
                working.append(ready)
                print(
                    f"  --workers {workers}, --max-rate {args.rate:g}: {whole:.1f}s, "
                    f"{ready:.1f}s from the first worker's start, {waited:.1f}s the longest "
                    f"a worker waited for the limit ({os.getloadavg()[0]:.1f} load)",
                    flush=True,
                )
            rows.append((workers, small, statistics.median(limited), statistics.median(working)))
        print()
        header = f"{'workers':>7} {'no limit s':>11} {'docs/s':>7} {'expected s':>11}"
        print(f"(no limit: the same run in the batches the limit makes, {cap} documents)")
        header += f" {'actual s':>9} {'docs/s':>7} {'ratio':>6} {'from start s':>13} {'ratio':>6}"
        print(f"{header} {'within 10%':>10}")
        for workers, free, actual, working in rows:
            ratio, ready_ratio = actual / expected, working / expected
            within = "yes" if 0.9 <= ratio <= 1.1 else "no"
            print(
                f"{workers:>7} {free:>11.1f} {args.docs / free:>7,.0f} {expected:>11.1f} "
                f"{actual:>9.1f} {args.docs / actual:>7,.0f} {ratio:>6.3f} {working:>13.1f} "
                f"{ready_ratio:>6.3f} {within:>10}"
            )
        print(
            "ratio: actual / expected on the whole run; 'from start': from "
            "the first worker's start to the run's end (without the workers' start-up)"
        )
        client.drop_database(database.name)
        client.close()


if __name__ == "__main__":
    main()
