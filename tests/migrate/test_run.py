"""Running migrations against a real server: callback shapes, buffering, dry run, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .helpers import FIXTURES, contents, insert_users, ishan, run_script, snapshot


def test_original_callback_shape_works_as_written(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=25)
    result, summary = run_script(mongo_uri, "add_full_name.py", tmp_path)
    assert result.exit_code == 0, result.output
    assert summary["status"] == "applied"
    assert summary["processed"] == 25
    assert summary["operations"] == {"users": {"update_one": 25}}
    assert summary["results"]["users"]["modified"] == 25
    for user in db.users.find():
        assert user["full_name"] == f"{user['first']} {user['last']}"
    lines = [json.loads(x) for x in Path(summary["log"]).read_text().splitlines()]
    updates = [line for line in lines if line["action"] == "update"]
    assert [line["doc_id"] for line in updates] == list(range(25))
    assert updates[3]["content"] == "Migrating document 3"
    assert lines[-2]["action"] == "summary" and lines[-2]["content"]["status"] == "done"
    assert lines[-1]["action"] == "end" and lines[-1]["content"]["status"] == "applied"
    record = db["_ishan_migrations"].find_one({"_id": "add_full_name"})
    assert record["status"] == "applied"
    assert record["runs"][0]["processed"] == 25


def per_document_reference(database: Any, script_name: str) -> None:
    """The original library's way: call the script's migrate() with plain pymongo collections."""
    namespace: dict[str, Any] = {}
    exec((FIXTURES / script_name).read_text(), namespace)
    colls = [database[name] for name in namespace["collections"]]
    for doc in list(database[namespace["primary"]].find().sort("_id", 1)):
        namespace["migrate"](doc, *colls, lambda action, content=None: None)


@pytest.mark.parametrize("batch_size", ["7", "1000"])
def test_buffered_writes_equal_per_document_writes(
    mongo_uri: str, db: Any, copy_db: Callable[[Any], Any], tmp_path: Path, batch_size: str
) -> None:
    insert_users(db, users=30, orders_per_user=3)
    reference = copy_db(db)
    per_document_reference(reference, "bump_order_totals.py")
    result, _summary = run_script(
        mongo_uri, "bump_order_totals.py", tmp_path, "--batch-size", batch_size
    )
    assert result.exit_code == 0, result.output
    assert contents(db, "users") == contents(reference, "users")
    # orders gets documents with fresh ObjectIds: compare them without their _id
    assert contents(db, "orders", drop_id=True) == contents(reference, "orders", drop_id=True)
    # the callback read its own buffered $inc: every note says "visit 1"
    notes = {o["note"] for o in db.orders.find({"note": {"$exists": True}})}
    assert notes == {"visit 1"}


def test_dry_run_writes_nothing_and_reports(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=12)
    before = snapshot(db, "users", "orders")
    names_before = set(db.list_collection_names())
    result = ishan(
        "migrate",
        "run",
        FIXTURES / "add_full_name.py",
        "--uri",
        mongo_uri,
        "--dry-run",
        "--log-dir",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    assert "dry run: nothing was written" in result.stdout
    assert "update_one" in result.stdout and "12" in result.stdout
    assert '"filter": {"_id": 0}' in result.stdout  # a sample of what it would write
    assert snapshot(db, "users", "orders") == before
    assert set(db.list_collection_names()) == names_before  # no changelog, lock or backup
    # a dry run does not count as applied: the real run is allowed
    result, summary = run_script(mongo_uri, "add_full_name.py", tmp_path)
    assert summary["status"] == "applied"


def test_context_form_with_filter_projection_and_new_collection(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=15)
    result, summary = run_script(mongo_uri, "tag_with_context.py", tmp_path)
    assert result.exit_code == 0, result.output
    active = {u["_id"] for u in db.users.find({"active": True})}
    assert summary["processed"] == len(active)
    assert {u["_id"] for u in db.users.find({"tag": {"$exists": True}})} == active
    assert db.users.find_one({"_id": 1})["tag"] == "bob"
    audits = list(db.audit.find())
    assert {a["user_id"] for a in audits} == {i for i in active if i % 5 == 0}
    assert {a["run"] for a in audits} == {summary["run_id"]}


def test_applied_migration_is_refused_unless_forced(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=5)
    run_script(mongo_uri, "inc_visits.py", tmp_path)
    result, _ = run_script(mongo_uri, "inc_visits.py", tmp_path)
    assert result.exit_code == 1
    assert "already applied" in result.stderr and "--force" in result.stderr
    assert len(list((tmp_path / "logs").glob("inc_visits-*.jsonl"))) == 1  # none for a refusal
    assert {u["visits"] for u in db.users.find()} == {1}
    result, _summary = run_script(mongo_uri, "inc_visits.py", tmp_path, "--force")
    assert result.exit_code == 0, result.output
    assert {u["visits"] for u in db.users.find()} == {2}
    assert len(db["_ishan_migrations"].find_one()["runs"]) == 2


def test_callback_error_stops_after_writing_what_succeeded(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=10)  # Bob is _id 1 and 6
    result, summary = run_script(mongo_uri, "fails_on_bob.py", tmp_path, "--batch-size", "4")
    assert result.exit_code == 1
    assert "migrate() failed for document 1: ValueError: Bob is not allowed" in result.stderr
    assert "--resume" in result.stderr
    assert summary["status"] == "failed"
    assert summary["failed_documents"] == [{"_id": 1, "error": "ValueError: Bob is not allowed"}]
    assert [u["_id"] for u in db.users.find({"seen": True})] == [0]
    assert db["_ishan_migrations"].find_one()["status"] == "failed"
    assert db["_ishan_partitions"].find_one()["checkpoint"] == {"after": 0}
    again, _ = run_script(mongo_uri, "fails_on_bob.py", tmp_path)
    assert again.exit_code == 1 and "continue it with --resume" in again.stderr


def test_continue_on_error_skips_failing_documents(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=10)
    result, summary = run_script(
        mongo_uri, "fails_on_bob.py", tmp_path, "--batch-size", "4", "--continue-on-error"
    )
    assert result.exit_code == 0, result.output
    assert summary["status"] == "applied"
    assert [e["_id"] for e in summary["failed_documents"]] == [1, 6]
    # the failing callbacks' own buffered writes were dropped, nobody else's
    assert sorted(u["_id"] for u in db.users.find({"seen": True})) == [0, 2, 3, 4, 5, 7, 8, 9]
    log = Path(summary["log"]).read_text().splitlines()
    errors = [json.loads(x) for x in log if '"action": "error"' in x]
    assert [e["doc_id"] for e in errors] == [1, 6]


DUPLICATE_INSERT = """
primary = "users"
collections = ["users", "orders"]

def migrate(doc, users, orders, write_log):
    users.update_one({"_id": doc["_id"]}, {"$set": {"done": True}})
    orders.insert_one({"_id": "o3-0" if doc["_id"] == 5 else f"new{doc['_id']}"})
"""


@pytest.mark.parametrize("mode", ["stop", "continue"])
def test_write_error_mid_batch(mongo_uri: str, db: Any, tmp_path: Path, mode: str) -> None:
    insert_users(db, users=12)
    script = tmp_path / "dup_insert.py"
    script.write_text(DUPLICATE_INSERT)
    extra = ["--continue-on-error"] if mode == "continue" else []
    result, summary = run_script(mongo_uri, script, tmp_path, "--batch-size", "4", *extra)
    done = sorted(u["_id"] for u in db.users.find({"done": True}))
    new_orders = sorted(o["_id"] for o in db.orders.find({"_id": {"$regex": "^new"}}))
    if mode == "stop":
        assert result.exit_code == 1
        assert "write failed for document 5" in result.stderr and "E11000" in result.stderr
        # the batch holding document 5 (4..7) was undone as a whole; batch 0..3 stays
        assert done == [0, 1, 2, 3]
        assert new_orders == ["new0", "new1", "new2", "new3"]
        assert db["_ishan_partitions"].find_one()["checkpoint"] == {"after": 3}
    else:
        assert result.exit_code == 0, result.output
        assert [e["_id"] for e in summary["failed_documents"]] == [5]
        assert done == [i for i in range(12) if i != 5]
        assert new_orders == sorted(f"new{i}" for i in range(12) if i != 5)


def test_limit_then_resume_processes_each_document_once(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=20)
    result, summary = run_script(
        mongo_uri, "inc_visits.py", tmp_path, "--limit", "7", "--batch-size", "3"
    )
    assert result.exit_code == 0, result.output
    assert summary["status"] == "interrupted" and summary["processed"] == 7
    assert sorted(u["_id"] for u in db.users.find({"visits": 1})) == list(range(7))
    result, summary = run_script(mongo_uri, "inc_visits.py", tmp_path, "--resume")
    assert summary["status"] == "applied" and summary["processed"] == 13
    assert {u["visits"] for u in db.users.find()} == {1}


def test_mixed_id_types_resume_in_mongodb_order(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    ids: list[Any] = [3, "b", 1.5, {"k": 1}, "a", 10, {"k": 0}]
    db.users.insert_many([{"_id": i, "visits": 0} for i in ids])
    db.orders.insert_one({"_id": "x", "user_id": -1, "total": 0})
    run_script(mongo_uri, "inc_visits.py", tmp_path, "--limit", "4", "--batch-size", "2")
    result, summary = run_script(mongo_uri, "inc_visits.py", tmp_path, "--resume")
    assert summary["status"] == "applied", result.output
    assert [u["visits"] for u in db.users.find()] == [1] * len(ids)


UPSERTS = """
primary = "users"
collections = ["stats"]

def migrate(doc, stats, write_log):
    stats.update_one({"first": doc["first"]}, {"$inc": {"n": 1}}, upsert=True)
    stats.replace_one({"_id": "last"}, {"user": doc["_id"]}, upsert=True)
"""


def test_upserts_and_their_rollback(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=10)
    script = tmp_path / "upserts.py"
    script.write_text(UPSERTS)
    result, _ = run_script(mongo_uri, script, tmp_path, "--batch-size", "3")
    assert result.exit_code == 0, result.output
    counts = {s["first"]: s["n"] for s in db.stats.find({"first": {"$exists": True}})}
    assert counts == {"Ada": 2, "Bob": 2, "Cy": 2, "Dee": 2, "Eve": 2}
    assert db.stats.find_one({"_id": "last"})["user"] == 9
    result = ishan("migrate", "rollback", "upserts", "--uri", mongo_uri, "--yes")
    assert result.exit_code == 0, result.output
    assert db.stats.count_documents({}) == 0


def test_unbuffered_writes_are_refused_per_document(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=3)
    script = tmp_path / "bulk.py"
    script.write_text(
        'primary = "users"\ncollections = ["users"]\n'
        "def migrate(doc, users, write_log):\n    users.find_one_and_delete({})\n"
    )
    result, _summary = run_script(mongo_uri, script, tmp_path)
    assert result.exit_code == 1
    assert "find_one_and_delete() is not available inside a migration" in result.stderr
    assert db.users.count_documents({}) == 3


def test_write_results_explain_buffering(mongo_uri: str, db: Any, tmp_path: Path) -> None:
    insert_users(db, users=2)
    script = tmp_path / "counts.py"
    script.write_text(
        'primary = "users"\ncollections = ["users"]\n'
        "def migrate(doc, users, write_log):\n"
        "    new = users.insert_one({'copy_of': doc['_id']})\n"
        "    write_log('inserted', str(new.inserted_id))\n"
        "    users.update_one({'_id': doc['_id']}, {'$set': {'x': 1}}).modified_count\n"
    )
    result, summary = run_script(mongo_uri, script, tmp_path)
    assert result.exit_code == 1
    assert "modified_count is not known inside a migration" in result.stderr
    inserted = Path(summary["log"]).read_text()
    assert '"action": "inserted"' in inserted
    assert db.users.count_documents({"copy_of": {"$exists": True}}) == 0  # dropped with the doc


SPLIT = """
primary = "users"
collections = ["users"]

def migrate(doc, users, write_log):
    users.insert_one({"first": doc["first"], "copy_of": doc["_id"]})
    users.update_one({"_id": doc["_id"]}, {"$inc": {"visits": 1}})
"""


def test_documents_inserted_into_the_primary_are_not_migrated_again(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=9)
    script = tmp_path / "split.py"
    script.write_text(SPLIT)
    run_script(mongo_uri, script, tmp_path, "--batch-size", "4", "--limit", "5")
    result, summary = run_script(mongo_uri, script, tmp_path, "--batch-size", "4", "--resume")
    assert summary["status"] == "applied", result.output
    assert db.users.count_documents({"copy_of": {"$exists": True}}) == 9
    assert db.users.count_documents({"copy_of": {"$exists": True}, "visits": 1}) == 0
    assert db.users.count_documents({"copy_of": {"$exists": False}, "visits": 1}) == 9


READ_THEN_FAIL = """
primary = "users"
collections = ["users"]

def migrate(doc, users, write_log):
    users.update_one({"_id": doc["_id"]}, {"$set": {"before_read": 1}})
    users.find_one({"_id": doc["_id"]})  # flushes the write above
    users.update_one({"_id": doc["_id"]}, {"$set": {"after_read": 1}})
    if doc["first"] == "Bob":
        raise ValueError("no")
"""


def test_failed_callback_drops_writes_queued_after_its_last_read(
    mongo_uri: str, db: Any, tmp_path: Path
) -> None:
    insert_users(db, users=10)
    script = tmp_path / "read_then_fail.py"
    script.write_text(READ_THEN_FAIL)
    result, _ = run_script(mongo_uri, script, tmp_path, "--continue-on-error")
    assert result.exit_code == 0, result.output
    bobs = {1, 6}
    assert {u["_id"] for u in db.users.find({"before_read": 1})} == set(range(10))
    assert {u["_id"] for u in db.users.find({"after_read": 1})} == set(range(10)) - bobs
