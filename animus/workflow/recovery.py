"""Crash recovery: what happens to a workflow whose runner died mid-flight.

The runbook's table, exactly:

| annotation      | after a crash                                        |
|-----------------|------------------------------------------------------|
| idempotent      | retried automatically (agent phases resume the        |
|                 | provider session saved in ``<phase>.session.json``)  |
| sideeffecting   | Blocked: "Idempotency: phase requires explicit retry |
| unknown         | decision" until ``workflow resume <id> --force``      |

A runner that died between phases (no attempt in flight) simply continues.

A runner that *fails* — exits non-zero on its own, a bug or a broken set-up
rather than a kill — is retried the same way, but not forever: the third
failure in a row (nothing completed and no operator resume in between)
blocks the workflow with the failure and where to read its traceback.
Kills (signals) and daemon restarts never count: chaos is not a bug.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from animus.workflow.store import IDEMPOTENCY_BLOCK, WorkflowStore, WorkflowRow

__all__ = ["recover", "RUNNER_FAILURE_LIMIT"]

RUNNER_FAILURE_LIMIT = 3
_FAILED = "runner_failed"  # checkpoint reasons of recoveries after a failure start with this


def _failures_in_a_row(store: WorkflowStore, wf_id: str) -> int:
    """Runner failures since the last progress or operator decision (retries' phase_started skipped)."""
    count = 0
    for reason in store.recent_checkpoints(wf_id, limit=4 * RUNNER_FAILURE_LIMIT):
        if reason.startswith(_FAILED):
            count += 1
        elif reason not in ("phase_started", "running"):
            break
    return count


def _saved_session(state_root: Path, wf_id: str, phase: str) -> str | None:
    try:
        data = json.loads((state_root / "runs" / wf_id / f"{phase}.session.json").read_text())
    except (OSError, ValueError):
        return None
    session = data.get("session_id")
    return str(session) if session else None


def recover(store: WorkflowStore, wf: WorkflowRow, state_root: Path,
            emit: Callable[[str, str, dict[str, Any]], None], crash: str = "", at_start: bool = False,
            failed: bool = False) -> str:
    """Apply the recovery rule to one interrupted workflow; return its new status.

    ``failed``: the runner exited non-zero on its own (not killed, not asked to stop)."""
    wf_id = wf["id"]
    attempt = store.running_attempt(wf_id)
    why = "daemon restarted with the phase in flight" if at_start else f"runner {crash or 'died'}"
    if failed and _failures_in_a_row(store, wf_id) + 1 >= RUNNER_FAILURE_LIMIT:
        return _block_failing(store, wf_id, attempt, why, emit)
    prefix = f"{_FAILED}_" if failed else "recovered_"
    if attempt is None:
        store.set_status(wf_id, "pending", checkpoint=prefix + "between_phases")
        emit("workflow_recovering", "warn", {"workflow_id": wf_id, "reason": why, "action": "continue"})
        return "pending"
    phase = attempt["phase"]
    idempotent = attempt["idempotency"] == "idempotent"
    session = _saved_session(state_root, wf_id, phase) if attempt["mode"] == "agent" else None
    with store.tx() as c:
        store.finish_attempt(attempt["id"], c, "crashed", error=why)
        if idempotent:
            store.update(wf_id, c, status="pending", resume_session=session, blocked_reason=None)
            store.checkpoint(c, wf_id, prefix + "retry", phase)
        else:
            store.update(wf_id, c, status="blocked", blocked_reason=IDEMPOTENCY_BLOCK)
            store.checkpoint(c, wf_id, "recovered_blocked", phase)
    data = {"workflow_id": wf_id, "phase": phase, "attempt": attempt["attempt"], "reason": why,
            "idempotency": attempt["idempotency"], "ts": time.time()}
    if idempotent:
        emit("workflow_recovering", "warn", data | {"action": "retry", "resume_session": session})
        return "pending"
    emit("workflow_blocked", "error", data | {"blocked_reason": IDEMPOTENCY_BLOCK})
    return "blocked"


def _block_failing(store: WorkflowStore, wf_id: str, attempt: dict[str, Any] | None, why: str,
                   emit: Callable[[str, str, dict[str, Any]], None]) -> str:
    reason = (f"the workflow runner failed {RUNNER_FAILURE_LIMIT} times in a row ({why}) (fix: read its "
              f"traceback with animus daemon logs --search {wf_id}, fix the cause, then animus workflow resume "
              f"{wf_id})")
    with store.tx() as c:
        if attempt is not None:
            store.finish_attempt(attempt["id"], c, "crashed", error=why)
        store.update(wf_id, c, status="blocked", blocked_reason=reason)
        store.checkpoint(c, wf_id, f"{_FAILED}_blocked", attempt["phase"] if attempt else None)
    emit("workflow_blocked", "error", {"workflow_id": wf_id, "phase": attempt["phase"] if attempt else None,
                                       "reason": why, "blocked_reason": reason, "ts": time.time()})
    return "blocked"
