"""A runner that fails on its own is retried, but not forever; kills never count (real SQLite store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from animus.workflow.recovery import RUNNER_FAILURE_LIMIT, recover
from animus.workflow.store import WorkflowStore


@pytest.fixture
def store(tmp_path: Path) -> WorkflowStore:
    return WorkflowStore(tmp_path / "workflow.db")


def _running(store: WorkflowStore, wf_id: str, in_phase: bool = False) -> None:
    """What the queue and the runner do before a crash: running, maybe a phase attempt in flight."""
    store.update(wf_id, status="running")
    if in_phase:
        store.begin_attempt(wf_id, "build", 0, "idempotent", "command", None)


def _crash(store: WorkflowStore, wf_id: str, emitted: list[tuple[str, dict[str, Any]]], failed: bool) -> str:
    crash = "exited with code 1" if failed else "killed by SIGKILL"
    return recover(store, store.get(wf_id), store.path.parent, lambda kind, _lvl, data: emitted.append((kind, data)),
                   crash=crash, failed=failed)


def test_the_third_failure_in_a_row_blocks_with_the_fix(store: WorkflowStore) -> None:
    wf = store.create("standard", {"id": "task:T-1", "kind": "task"})["id"]
    emitted: list[tuple[str, dict[str, Any]]] = []
    outcomes = []
    for n in range(RUNNER_FAILURE_LIMIT):
        _running(store, wf, in_phase=n % 2 == 1)  # in a phase, or between phases
        outcomes.append(_crash(store, wf, emitted, failed=True))
    assert outcomes == ["pending"] * (RUNNER_FAILURE_LIMIT - 1) + ["blocked"]
    row = store.get(wf)
    assert row["status"] == "blocked"
    assert row["blocked_reason"] == (
        f"the workflow runner failed 3 times in a row (runner exited with code 1) (fix: read its traceback with "
        f"animus daemon logs --search {wf}, fix the cause, then animus workflow resume {wf})")
    assert emitted[-1][0] == "workflow_blocked" and emitted[-1][1]["blocked_reason"] == row["blocked_reason"]
    assert store.running_attempt(wf) is None  # the attempt in flight is recorded as crashed


def test_kills_never_count_and_progress_or_a_resume_starts_the_count_again(store: WorkflowStore) -> None:
    wf = store.create("standard", None)["id"]
    emitted: list[tuple[str, dict[str, Any]]] = []
    for _ in range(10):  # chaos: a runner killed again and again is always retried
        _running(store, wf, in_phase=True)
        assert _crash(store, wf, emitted, failed=False) == "pending"
    for _ in range(RUNNER_FAILURE_LIMIT - 1):
        _running(store, wf)
        assert _crash(store, wf, emitted, failed=True) == "pending"
    with store.tx() as c:  # a phase completed: the failures before it are history
        store.checkpoint(c, wf, "phase_completed", "build")
    for _ in range(RUNNER_FAILURE_LIMIT - 1):
        _running(store, wf)
        assert _crash(store, wf, emitted, failed=True) == "pending"
    store.set_status(wf, "pending", checkpoint="resumed")  # the operator resumed it
    for _ in range(RUNNER_FAILURE_LIMIT - 1):
        _running(store, wf)
        assert _crash(store, wf, emitted, failed=True) == "pending"
    _running(store, wf)
    assert _crash(store, wf, emitted, failed=True) == "blocked"
