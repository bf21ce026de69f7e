"""workflow.db: step records written by SQL that numbers them itself (attempts, checkpoints), the run
queue's query, and how a writer waits for another process's transaction."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from animus.state.sqlite_conn import BUSY_TIMEOUT_S, begin_immediate
from animus.workflow.store import WorkflowStore


def test_attempts_are_numbered_per_phase(tmp_path: Path) -> None:
    store = WorkflowStore(tmp_path / "workflow.db")
    wf = store.create("w", {"title": "t"})
    other = store.create("w", {"title": "u"})
    numbers = [store.begin_attempt(wf["id"], phase, i, "idempotent", "command", None)[1]
               for i, phase in enumerate(["build", "build", "test", "build"])]
    assert numbers == [1, 2, 1, 3]
    assert store.begin_attempt(other["id"], "build", 0, "idempotent", "command", None)[1] == 1
    rows = store.attempts(wf["id"])
    assert [(r["phase"], r["attempt"], r["status"]) for r in rows] == [
        ("build", 1, "running"), ("build", 2, "running"), ("test", 1, "running"), ("build", 3, "running")]
    attempt_id, _ = store.begin_attempt(wf["id"], "test", 1, "idempotent", "command", None)
    assert store.attempts(wf["id"])[-1]["id"] == attempt_id


def test_checkpoints_number_and_snapshot_the_row(tmp_path: Path) -> None:
    store = WorkflowStore(tmp_path / "workflow.db")
    wf = store.create("w", {"title": "t"})
    store.begin_attempt(wf["id"], "build", 0, "idempotent", "command", None)
    with store.tx() as c:
        store.update(wf["id"], c, phase_index=1, current_phase="test", rework={"build": 1})
        store.checkpoint(c, wf["id"], "phase_completed", "build")
    store.set_status(wf["id"], "blocked", "needs a hand")
    with sqlite3.connect(tmp_path / "workflow.db") as conn:
        rows = conn.execute("SELECT number, reason, phase, state_json FROM checkpoints WHERE workflow_id=? "
                            "ORDER BY number", (wf["id"],)).fetchall()
    assert [(n, reason, phase) for n, reason, phase, _ in rows] == [
        (1, "created", None), (2, "phase_started", "build"), (3, "phase_completed", "build"), (4, "blocked", None)]
    assert json.loads(rows[2][3]) == {"status": "running", "phase_index": 1, "current_phase": "test",
                                      "rework_json": '{"build": 1}', "blocked_reason": None}
    assert json.loads(rows[3][3])["blocked_reason"] == "needs a hand"
    assert store.recent_checkpoints(wf["id"], 2) == ["blocked", "phase_completed"]


def test_a_runner_opens_the_supervisors_file_without_checking_its_schema(tmp_path: Path) -> None:
    made = WorkflowStore(tmp_path / "workflow.db")
    wf = made.create("w", {"title": "t"})
    runner = WorkflowStore(tmp_path / "workflow.db", fence=(wf["id"], 0), ensure_schema=False)
    made.update(wf["id"], status="running")  # the fence needs run 0 running: the supervisor's start of it
    runner.update(wf["id"], phase_index=2)
    assert made.get(wf["id"])["phase_index"] == 2
    runner.close()
    made.close()


def test_the_run_queue_reads_only_what_may_start_oldest_first(tmp_path: Path) -> None:
    """Queued runs that wait (an approval not given, a reset time ahead) are passed over in SQL, and a
    fill reads only as many as it can start, not the whole backlog."""
    store = WorkflowStore(tmp_path / "workflow.db")
    now = 1_000_000.0
    ids = [store.create("w", {"title": str(i)})["id"] for i in range(7)]
    store.update(ids[0], waiting="approval of phase review: animus workflow approve …")
    store.update(ids[1], waiting="approved:review")
    store.update(ids[2], waiting="usage limit", not_before=now + 60)
    store.update(ids[3], waiting="usage limit", not_before=now - 60)
    store.set_status(ids[4], "running")
    with store.tx() as c:  # created a second apart, in this order
        for i, wf_id in enumerate(ids):
            c.execute("UPDATE workflows SET created_at=? WHERE id=?", (100.0 + i, wf_id))
    assert store.dispatchable(10, now) == [ids[1], ids[3], ids[5], ids[6]]
    assert store.dispatchable(2, now) == [ids[1], ids[3]]
    assert store.dispatchable_count(now) == 4
    assert store.dispatchable(10, now + 120) == [ids[1], ids[2], ids[3], ids[5], ids[6]]


HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))  # another writer's transaction, this long
conn.execute("COMMIT")
"""


def test_a_writer_waits_out_another_process_transaction(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE against a held write lock: retried in short steps, then in SQLite's own
    waits; the write lands once the lock is free, and the connection keeps its busy timeout."""
    path = tmp_path / "workflow.db"
    store = WorkflowStore(path)
    wf = store.create("w", {"title": "t"})
    for hold in ("0.002", "0.2"):  # within the short steps, and past them
        with subprocess.Popen([sys.executable, "-c", HOLDER, str(path), hold], stdout=subprocess.PIPE,
                              text=True) as holder:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            store.update(wf["id"], waiting=f"after a hold of {hold}s")
            assert holder.wait(10) == 0
        assert store.get(wf["id"])["waiting"] == f"after a hold of {hold}s"
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_S * 1000


def test_an_error_other_than_busy_is_not_retried(tmp_path: Path) -> None:
    store = WorkflowStore(tmp_path / "workflow.db")
    store.conn.execute("BEGIN")
    try:
        with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
            begin_immediate(store.conn)
    finally:
        store.conn.execute("ROLLBACK")
    assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_S * 1000
