"""workflow.db's step records, written by SQL that numbers them itself (attempts, checkpoints)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

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
