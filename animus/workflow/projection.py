"""Projecting a workflow's outcome onto its task, once.

completed → done; failed → blocked ("Blocked by status update"); cancelled →
cancelled. The task's current status is read first and the write is skipped
when it already holds, and the projected status is recorded on the workflow,
so a projection repeated after a crash never makes a second transition. While
the subject backend is unavailable the projection stays pending and is
retried on every scheduler tick.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from animus.errors import AnimusError, NotFound, Unavailable
from animus.workflow.store import WorkflowStore, WorkflowRow

__all__ = ["Projector", "OUTCOME"]

OUTCOME = {"completed": "done", "failed": "blocked", "cancelled": "cancelled"}


class Projector:
    def __init__(self, store: WorkflowStore, control: Any, emit: Callable[[str, str, dict[str, Any]], None]) -> None:
        self.store = store
        self.control = control
        self.emit = emit
        self._lock = asyncio.Lock()

    async def subject(self, kind: str, verb: str, params: dict[str, Any]) -> Any:
        return await self.control.call("subject/call", {"kind": kind, "verb": verb, "params": params}, timeout=15)

    async def set_task(self, kind: str, subject_id: str, status: str, reason: str | None = None) -> bool:
        """Move a subject to ``status`` unless it is there already; True if it moved."""
        current = await self.subject(kind, "get", {"id": subject_id})
        if current.get("status") == status:
            return False
        await self.subject(kind, "status", {"id": subject_id, "status": status, "reason": reason})
        self.emit("task_transition", "info", {"subject_id": subject_id, "from_status": current.get("status"),
                                              "to_status": status})
        return True

    async def project(self, wf_id: str) -> None:
        """Put the workflow's outcome on its task, as workflow.db says it is once the lock is ours."""
        async with self._lock:  # one projection at a time: exit hooks and ticks race otherwise
            await self._project(self.store.get(wf_id))

    async def _project(self, wf: WorkflowRow) -> None:
        target, kind, subject_id = OUTCOME.get(wf["status"]), wf["subject_kind"], wf["subject_id"]
        if target is None or not kind or not subject_id or wf["projected"] == wf["status"]:
            return
        try:
            moved = await self.set_task(kind, subject_id, target)
        except (Unavailable, NotFound) as exc:
            self.emit("projection_pending", "warn", {"workflow_id": wf["id"], "subject_id": wf["subject_id"],
                                                     "error": exc.message})
            return
        except AnimusError as exc:
            self.emit("projection_failed", "error", {"workflow_id": wf["id"], "error": exc.message})
            return
        self.store.update(wf["id"], projected=wf["status"])
        self.emit("task_projected", "info", {"workflow_id": wf["id"], "subject_id": wf["subject_id"],
                                             "status": target, "moved": moved})

    async def retry_pending(self) -> None:
        for wf in self.store.unprojected():
            await self.project(wf["id"])
