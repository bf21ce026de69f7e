"""The scheduler tick, and autonomous scheduling: ready tasks by priority and age.

Each tick retries pending projections, then (autonomous mode) fills free pool
slots with ``ready`` subjects of the scheduled kinds (``p0`` first, then the
oldest), moving each to ``in-progress`` before its workflow is queued, then
refills the queue. A kind whose backend is unavailable is left alone for that
tick.

Cron schedules (``schedules:`` and ``type: cron`` triggers) are not fired
here: the ``cron`` trigger plugin fires them under the triggers supervisor
and they arrive as ``workflow/fire`` like any other trigger event.
"""

from __future__ import annotations

from typing import Any

from animus.errors import AnimusError, Conflict, Unavailable
from animus.workflow.events import WorkflowEvents
from animus.workflow.intake import Intake
from animus.workflow.projection import Projector
from animus.workflow.queue import RunQueue

__all__ = ["Scheduler", "PRIORITY_RANK"]

PRIORITY_RANK = {"p0": 0, "p1": 1, "p2": 2, "p3": 3}


class Scheduler:
    def __init__(self, queue: RunQueue, projector: Projector, intake: Intake, events: WorkflowEvents,
                 kinds: tuple[str, ...], autonomous: bool) -> None:
        self.queue = queue
        self.projector = projector
        self.intake = intake
        self.events = events
        self.kinds = kinds
        self.autonomous = autonomous

    async def tick(self) -> dict[str, Any]:
        await self.projector.retry_pending()
        started = await self.pick_ready() if self.autonomous else []
        await self.queue.fill()
        return {"started": started}

    async def pick_ready(self) -> list[str]:
        free = self.queue.free_slots()
        if free <= 0:
            return []
        started: list[str] = []
        for kind in self.kinds:
            try:
                ready = await self.projector.subject(kind, "list", {"status": "ready"})
            except Unavailable:
                continue  # its backend is down: leave its tasks alone
            except AnimusError as exc:
                self.events.emit("scheduler_error", "warn", {"kind": kind, "error": exc.message})
                continue
            ready.sort(key=lambda s: (PRIORITY_RANK.get(str(s.get("priority")), 9), str(s.get("created_at") or "")))
            for subject in ready:
                if len(started) >= free:
                    return started
                try:
                    wf = await self.intake.on_subject(kind, subject, None, "ready-queue")
                except Conflict:
                    continue  # already has an active workflow
                except AnimusError as exc:
                    self.events.emit("scheduler_error", "warn", {"subject_id": subject.get("id"),
                                                                 "error": exc.message})
                    continue
                started.append(wf["id"])
        return started
