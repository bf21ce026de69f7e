"""How a run enters the queue: on a subject (a task), or ad hoc (a trigger, a title).

A run on a subject moves the subject to ``in-progress`` first, and is not
started before that is done (``RunQueue.taking_in``); a subject backend that
is down blocks the new run with "Subject backend unavailable" — if it is
still pending (the operator may have cancelled it meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from animus.errors import NotFound, Unavailable
from animus.workflow.events import WorkflowEvents
from animus.workflow.model import WorkflowConfig
from animus.workflow.projection import Projector
from animus.workflow.queue import SUBJECT_UNAVAILABLE, RunQueue
from animus.workflow.store import WorkflowStore, WorkflowRow

__all__ = ["Intake"]


class Intake:
    def __init__(self, store: WorkflowStore, queue: RunQueue, projector: Projector, events: WorkflowEvents,
                 configs: Callable[[], WorkflowConfig]) -> None:
        self.store = store
        self.queue = queue
        self.projector = projector
        self.events = events
        self.configs = configs

    def workflow_ref(self, ref: str | None) -> str:
        cfg = self.configs()
        ref = ref or cfg.default_workflow_ref or "standard"
        if ref not in cfg.workflows:
            raise NotFound(f"no workflow {ref!r} in the workflow config",
                           fix=f"known: {', '.join(sorted(cfg.workflows))}; see animus workflow validate")
        return ref

    async def on_subject(self, kind: str, subject: dict[str, Any], workflow_ref: str | None,
                         source: str) -> WorkflowRow:
        ref = self.workflow_ref(workflow_ref or (subject.get("custom") or {}).get("workflow_ref"))
        wf = self.store.create(ref, subject | {"kind": kind}, source)
        self.queue.taking_in.add(wf["id"])
        try:
            await self.projector.set_task(kind, subject["id"], "in-progress")
        except Unavailable:
            if self.store.get(wf["id"])["status"] == "pending":
                self.events.block(wf["id"], SUBJECT_UNAVAILABLE)
            return self.store.get(wf["id"])
        finally:
            self.queue.taking_in.discard(wf["id"])
        self.events.workflow("workflow_queued", "info", wf["id"], workflow_ref=ref, subject_id=subject["id"],
                             trigger_source=source)
        await self.queue.fill()
        return self.store.get(wf["id"])

    async def on_unavailable_subject(self, kind: str, subject_id: str, workflow_ref: str | None) -> WorkflowRow:
        wf = self.store.create(self.workflow_ref(workflow_ref), {"id": subject_id, "kind": kind}, "manual")
        self.events.block(wf["id"], SUBJECT_UNAVAILABLE)
        return self.store.get(wf["id"])

    async def adhoc(self, workflow_ref: str | None, title: str, source: str,
                    payload: dict[str, Any] | None = None) -> WorkflowRow:
        ref = self.workflow_ref(workflow_ref)
        wf = self.store.create(ref, {"title": title, "input": payload or {}}, source)
        self.events.workflow("workflow_queued", "info", wf["id"], workflow_ref=ref, trigger_source=source)
        await self.queue.fill()
        return self.store.get(wf["id"])
