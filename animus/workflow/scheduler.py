"""Autonomous scheduling: ready tasks by priority and age.

Each tick fills free pool slots with ``ready`` subjects of the scheduled
kinds (``p0`` first, then the oldest), moving each to ``in-progress`` before
its workflow is queued. A kind whose backend is unavailable is left alone
for that tick.

Cron schedules (``schedules:`` and ``type: cron`` triggers) are not fired
here: the ``cron`` trigger plugin fires them under the triggers supervisor
and they arrive as ``workflow/fire`` like any other trigger event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from animus.errors import AnimusError, Conflict, Unavailable

if TYPE_CHECKING:
    from animus.workflow.service import WorkflowSupervisor

__all__ = ["pick_ready", "PRIORITY_RANK"]

PRIORITY_RANK = {"p0": 0, "p1": 1, "p2": 2, "p3": 3}


async def pick_ready(sup: WorkflowSupervisor) -> list[str]:
    free = sup.pool_size - len(sup.running_ids()) - len(sup.dispatchable())
    if free <= 0:
        return []
    kinds = list(sup.config.get("scheduler_kinds") or ["task"])
    started: list[str] = []
    for kind in kinds:
        try:
            ready = await sup.control.call("subject/call", {"kind": kind, "verb": "list",
                                                            "params": {"status": "ready"}}, timeout=15)
        except Unavailable:
            continue  # its backend is down: leave its tasks alone
        except AnimusError as exc:
            sup.emit("scheduler_error", "warn", {"kind": kind, "error": exc.message})
            continue
        ready.sort(key=lambda s: (PRIORITY_RANK.get(str(s.get("priority")), 9), str(s.get("created_at") or "")))
        for subject in ready:
            if len(started) >= free:
                return started
            try:
                wf = await sup.api.start_on_subject(kind, subject, None, "ready-queue")
            except Conflict:
                continue  # already has an active workflow
            except AnimusError as exc:
                sup.emit("scheduler_error", "warn", {"subject_id": subject.get("id"), "error": exc.message})
                continue
            started.append(wf["id"])
    return started
