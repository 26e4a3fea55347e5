"""Migrate workers under network partitions: a database host (secantusd-py), three workers.

The script adds 1 to every document (`$inc`: not idempotent, so a batch written twice shows).
One callback, on whichever worker reaches it first once the test arms it, writes a marker with
its host's address and then takes a while; the test cuts that host from the database then:

- while the callback runs, for longer than --lease-seconds: the worker's write is refused
  before it is sent (its lease ran out), another worker takes the partition over, and every
  document ends incremented exactly once, as in a one-worker run;
- just before its batch's bulk write: the write is on its way when the link goes silent.

Rollback afterwards restores every document byte for byte.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pymongo
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from tests.cluster.conftest import ISHAN, Clock, Figures, start_mongo
from tests.cluster.net import Network
from tests.harness.waiting import wait_until

DOCS = 300
BATCH = 10
LEASE = "2"
CUT_S = 5.0
SCRIPT = """
import os
import socket
import time
from pathlib import Path

primary = "items"
collections = ["items"]
MARKS = Path(os.environ["ISHAN_CLUSTER_MARKS"])
HOLD = float(os.environ["ISHAN_CLUSTER_HOLD"])


def here():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect((os.environ["ISHAN_CLUSTER_DB"], 9))
    return probe.getsockname()[0]


def migrate(doc, items, write_log):
    time.sleep(0.01)  # an external call
    items.update_one({"_id": doc["_id"]}, {"$inc": {"n": 1}})
    if doc["_id"] % 10 == 9:  # the last of its batch: the batch is written right after
        try:
            os.rename(MARKS / "armed", MARKS / "fired")  # one worker wins
        except FileNotFoundError:
            return
        (MARKS / "victim").write_text(here())
        time.sleep(HOLD)
"""


def raw_snapshot(database: Any) -> list[bytes]:
    raw = database["items"].with_options(codec_options=CodecOptions(RawBSONDocument))
    return [doc.raw for doc in raw.find().sort("_id", 1)]


def migrate_run(uri: str, script: Path, logs: Path, *extra: str) -> list[str]:
    argv = [ISHAN, "migrate", "run", str(script), "--uri", uri, "-q", "--json"]
    return [*argv, "--batch-size", str(BATCH), "--lease-seconds", LEASE, "--log-dir", str(logs)]


def scenario(net: Network, tmp: Path, hold: float, name: str) -> None:
    db_host = net.add_host("db")
    workers = [net.add_host(f"w{i}") for i in (1, 2, 3)]
    base = start_mongo(net, db_host, tmp / "db")
    uri, reference_uri = f"{base}/cluster", f"{base}/reference"
    client: pymongo.MongoClient[Any] = pymongo.MongoClient(base, serverSelectionTimeoutMS=5000)
    try:
        for database in (client["cluster"], client["reference"]):
            database["items"].insert_many(
                [{"_id": i, "n": 0, "pad": "x" * 40} for i in range(DOCS)]
            )
        original = raw_snapshot(client["cluster"])
        marks = tmp / "marks"
        marks.mkdir()
        script = tmp / "add_one.py"
        script.write_text(SCRIPT)
        env = {"ISHAN_CLUSTER_MARKS": str(marks), "ISHAN_CLUSTER_HOLD": str(hold)}
        env["ISHAN_CLUSTER_DB"] = db_host.address

        # the reference: one worker, no faults
        import os

        environ = {**os.environ, **env}
        one = subprocess.run(
            migrate_run(reference_uri, script, tmp / "ref-logs"), env=environ,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert one.returncode == 0, one.stderr
        reference = list(client["reference"]["items"].find().sort("_id", 1))

        (marks / "armed").touch()
        processes = []
        first = migrate_run(uri, script, tmp / "logs")
        processes.append(net.popen(workers[0], first, env=environ))
        locks = client["cluster"]["_ishan_locks"]
        wait_until(
            lambda: locks.find_one({"settings": {"$exists": True}}) is not None,
            30,
            what="the run to start",
        )
        for host in workers[1:]:
            processes.append(net.popen(host, [*first, "--join"], env=environ))
        wait_until(lambda: (marks / "victim").exists(), 60, what="the marked callback")
        address = (marks / "victim").read_text()
        victim = next(host for host in workers if host.address == address)
        net.cut(victim, db_host)
        time.sleep(CUT_S)
        net.heal(victim, db_host)
        clock = Clock()
        outputs = [process.communicate(timeout=120) for process in processes]
        recovery = clock.since()
        codes = [process.returncode for process in processes]
        after = list(client["cluster"]["items"].find().sort("_id", 1))
        counts = [doc["n"] for doc in after]
        logs = [
            json.loads(line)
            for path in (tmp / "logs").glob("*")
            for line in path.read_text().splitlines()
        ]
        took_over = [line for line in logs if line.get("action") == "took over"]
        lost_lease = [line for line in logs if line.get("action") == "lost lease"]
        figures = Figures(
            name,
            faults=net.faults,
            items=DOCS,
            item_kind="documents",
            lost=sum(1 for n in counts if n < 1),
            twice=sum(1 for n in counts if n > 1),
            recovery_s=recovery,
            notes={"takeovers": len(took_over), "leases lost": len(lost_lease)},
        )
        figures.show()
        errors = [err[-400:] for _, err in outputs]
        assert codes == [0, 0, 0], f"{figures.line()}; {errors}"
        assert figures.lost == 0, figures.line()
        assert took_over, f"nobody took the cut worker's partition over: {figures.line()}"
        assert figures.twice == 0, figures.line()
        assert after == reference, figures.line()

        rollback = subprocess.run(
            [ISHAN, "migrate", "rollback", "add_one", "--uri", uri, "--yes"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert rollback.returncode == 0, rollback.stderr
        assert raw_snapshot(client["cluster"]) == original, "rollback did not restore the bytes"
    finally:
        client.close()


def test_a_worker_cut_while_its_callback_runs_past_the_lease(net: Network, tmp_path: Path) -> None:
    # the callback outlasts the lease: the worker's lease is gone before it could write
    scenario(net, tmp_path, hold=3.0, name="migrate: a worker cut while its callback runs")


@pytest.mark.parametrize("hold", [0.3])
def test_a_worker_cut_as_its_bulk_write_goes_out(net: Network, tmp_path: Path, hold: float) -> None:
    # the cut lands just before the batch's writes: they leave and wait in TCP retransmission
    scenario(net, tmp_path, hold=hold, name="migrate: a worker cut as its bulk write goes out")
