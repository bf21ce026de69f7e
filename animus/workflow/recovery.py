"""Crash recovery: what happens to a workflow whose runner died mid-flight.

The runbook's table, exactly:

| annotation      | after a crash                                        |
|-----------------|------------------------------------------------------|
| idempotent      | retried automatically (agent phases resume the        |
|                 | provider session saved in ``<phase>.session.json``)  |
| sideeffecting   | Blocked: "Idempotency: phase requires explicit retry |
| unknown         | decision" until ``workflow resume <id> --force``      |

A runner that died between phases (no attempt in flight) simply continues.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from animus.workflow.store import IDEMPOTENCY_BLOCK, WorkflowStore, WorkflowRow

__all__ = ["recover"]


def _saved_session(state_root: Path, wf_id: str, phase: str) -> str | None:
    try:
        data = json.loads((state_root / "runs" / wf_id / f"{phase}.session.json").read_text())
    except (OSError, ValueError):
        return None
    session = data.get("session_id")
    return str(session) if session else None


def recover(store: WorkflowStore, wf: WorkflowRow, state_root: Path,
            emit: Callable[[str, str, dict[str, Any]], None], crash: str = "", at_start: bool = False) -> str:
    """Apply the recovery rule to one interrupted workflow; return its new status."""
    wf_id = wf["id"]
    attempt = store.running_attempt(wf_id)
    why = "daemon restarted with the phase in flight" if at_start else f"runner {crash or 'died'}"
    if attempt is None:
        store.set_status(wf_id, "pending", checkpoint="recovered_between_phases")
        emit("workflow_recovering", "warn", {"workflow_id": wf_id, "reason": why, "action": "continue"})
        return "pending"
    phase = attempt["phase"]
    idempotent = attempt["idempotency"] == "idempotent"
    session = _saved_session(state_root, wf_id, phase) if attempt["mode"] == "agent" else None
    with store.tx() as c:
        store.finish_attempt(attempt["id"], c, "crashed", error=why)
        if idempotent:
            store.update(wf_id, c, status="pending", resume_session=session, blocked_reason=None)
            store.checkpoint(c, wf_id, "recovered_retry", phase)
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
