"""The run queue: ``pending`` workflows started up to ``pool_size`` at once.

A queued run is dispatchable unless it waits (an approval, a usage limit
until its reset time) or is still being taken in (``taking_in``: its task is
being moved to ``in-progress``; a run started meanwhile could finish before
the intake gives up on a slow backend and blocks it — a completed run
blocked afterwards, found by ``bench/soak.py``). Before its runner starts, its subject is read afresh
(a dead backend blocks it with "Subject backend unavailable"; a deleted
subject fails it) and it is marked ``running``; one fill runs at a time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from animus.errors import NotFound, Unavailable
from animus.workflow.events import WorkflowEvents
from animus.workflow.launcher import RunnerLauncher
from animus.workflow.projection import Projector
from animus.workflow.store import WorkflowStore, WorkflowRow

__all__ = ["RunQueue", "SUBJECT_UNAVAILABLE"]

SUBJECT_UNAVAILABLE = "Subject backend unavailable"


class RunQueue:
    def __init__(self, store: WorkflowStore, launcher: RunnerLauncher, projector: Projector,
                 events: WorkflowEvents, pool_size: int) -> None:
        self.store = store
        self.launcher = launcher
        self.projector = projector
        self.events = events
        self.pool_size = pool_size
        self._lock = asyncio.Lock()
        self.taking_in: set[str] = set()  # runs the intake has not finished with: not to be started yet

    def dispatchable(self, limit: int) -> list[str]:
        """Up to ``limit`` ids of queued runs that may start now, oldest first (no row decoded; a run
        still being taken in is passed over)."""
        taking_in = self.taking_in
        ids = self.store.dispatchable(limit + len(taking_in), time.time())
        return [wf_id for wf_id in ids if wf_id not in taking_in][:limit]

    def free_slots(self) -> int:
        waiting = self.store.dispatchable_count(time.time()) - len(self.taking_in)
        return self.pool_size - len(self.launcher.running()) - max(waiting, 0)

    async def fill(self) -> None:
        """Start queued workflows while there is room in the pool."""
        async with self._lock:
            if not self.launcher.available:
                return  # runs wait in the queue until the cluster is reachable
            # at most pool_size ids: the free slots, and room for queued runs still held by an ending runner
            for wf_id in self.dispatchable(self.pool_size):
                if len(self.launcher.running()) >= self.pool_size:
                    return
                if self.launcher.has(wf_id):
                    continue
                wf = self.store.get(wf_id)  # afresh: an earlier start awaited, a cancel may have come
                if wf["status"] == "pending":
                    await self._start(wf)

    async def _start(self, wf: WorkflowRow) -> None:
        fresh: dict[str, Any] = {}
        if (kind := wf["subject_kind"]) and (subject_id := wf["subject_id"]):
            try:
                fresh["subject"] = await self.projector.subject(kind, "get", {"id": subject_id})
            except Unavailable:
                self.events.block(wf["id"], SUBJECT_UNAVAILABLE)
                return
            except NotFound as exc:
                self.store.set_status(wf["id"], "failed", f"subject {wf['subject_id']} is gone: {exc.message}")
                return
        waiting = wf.get("waiting")
        marked = fresh | {"status": "running", "runs": wf["runs"] + 1, "not_before": None,
                          "waiting": waiting if waiting and waiting.startswith("approved:") else None}
        self.store.update(wf["id"], **marked)  # the subject as read now, and running: one write
        await self.launcher.launch(cast(WorkflowRow, wf | marked), wf["runs"] + 1)  # as written: no re-read
