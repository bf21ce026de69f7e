"""What happens to a run from outside it: a runner's end, and the operator's decisions.

- a runner ended: what its command left behind is killed (``command_group``);
  a cancel requested meanwhile ends the workflow
  ``cancelled``; a run still marked ``running`` crashed and is recovered by
  its phase's idempotency annotation (``recovery``); either way the queue is
  refilled (the next run starts at once) and the outcome projected onto its task;
- ``cancel`` stops the runner (or cancels a queued run at once);
- ``resume`` queues a blocked, failed or parked run again; a run blocked by
  the idempotency rule needs ``force``;
- ``approve`` / reject a manual gate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from animus.errors import Conflict, InvalidInput, NotFound
from animus.supervision.exit_reason import ExitReason
from animus.workflow import command_group
from animus.workflow.events import WorkflowEvents
from animus.workflow.launcher import RunnerLauncher
from animus.workflow.projection import Projector
from animus.workflow.queue import RunQueue
from animus.workflow.recovery import recover
from animus.workflow.store import IDEMPOTENCY_BLOCK, TERMINAL, WorkflowStore, WorkflowRow

__all__ = ["Operations"]


class Operations:
    def __init__(self, store: WorkflowStore, launcher: RunnerLauncher, queue: RunQueue, projector: Projector,
                 events: WorkflowEvents, state_root: Path,
                 spawn: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self.store = store
        self.launcher = launcher
        self.queue = queue
        self.projector = projector
        self.events = events
        self.state_root = state_root
        self.spawn = spawn

    # -- runner exits --------------------------------------------------------
    def runner_exited(self, wf_id: str, reason: ExitReason, detail: str | None = None) -> None:
        killed = command_group.sweep(self.state_root / "runs" / wf_id)  # a dead runner's command leftovers
        if killed:
            self.events.workflow("command_leftovers_killed", "warn", wf_id, killed=killed,
                                 message=f"killed {killed} process(es) its runner's command left behind")
        try:
            wf = self.store.get(wf_id)
        except NotFound:
            return
        if wf["cancel_requested"] and wf["status"] not in TERMINAL:
            with self.store.tx() as c:
                self.store.cancel_running_attempts(c, wf_id)
                self.store.update(wf_id, c, status="cancelled", completed_at=time.time())
                self.store.checkpoint(c, wf_id, "cancelled", None)
            self.events.workflow("workflow_cancelled", "warn", wf_id, message="cancelled (runner killed)")
        elif wf["status"] == "running":
            failed = reason.signal is None and not reason.requested and reason.code not in (0, None)
            recover(self.store, wf, self.state_root, self.events.emit, crash=detail or reason.describe(),
                    failed=failed)
        self.spawn(self._after_exit(wf_id))

    async def _after_exit(self, wf_id: str) -> None:
        try:  # the next queued run first: the projection's round trips to the subject need not delay it
            await self.queue.fill()
        finally:
            await self.projector.project(wf_id)

    # -- operator actions ----------------------------------------------------
    async def cancel(self, wf_id: str) -> WorkflowRow:
        wf = self.store.get(wf_id)
        if wf["status"] in TERMINAL:
            raise Conflict(f"workflow {wf_id} is already {wf['status']}")
        self.store.update(wf_id, cancel_requested=1)
        if self.launcher.has(wf_id):
            await self.launcher.stop_run(wf_id)
        else:
            self.store.set_status(wf_id, "cancelled", waiting=None)
            self.events.workflow("workflow_cancelled", "warn", wf_id, message="cancelled by operator")
            await self.projector.project(wf_id)
        return self.store.get(wf_id)

    async def resume(self, wf_id: str, force: bool) -> WorkflowRow:
        wf = self.store.get(wf_id)
        status = wf["status"]
        if status in ("completed", "cancelled"):
            raise Conflict(f"workflow {wf_id} is {status}; start a new one with animus workflow run")
        if status == "running":
            raise Conflict(f"workflow {wf_id} is running")
        if status == "blocked" and wf["blocked_reason"] == IDEMPOTENCY_BLOCK and not force:
            raise Conflict(f"workflow {wf_id} is blocked: {IDEMPOTENCY_BLOCK}",
                           fix=f"inspect it (animus workflow get {wf_id}), then animus workflow resume {wf_id} --force")
        fields: dict[str, Any] = {"waiting": None, "not_before": None, "failure_reason": None, "projected": None}
        if status == "failed":
            rework = dict(wf["rework"])
            rework.pop(wf.get("current_phase") or "", None)
            fields["rework"] = rework
        self.store.set_status(wf_id, "pending", checkpoint="resumed" + (" (forced)" if force else ""), **fields)
        self.events.workflow("workflow_resumed_by_operator", "info", wf_id, force=force, previous=status)
        await self.queue.fill()
        return self.store.get(wf_id)

    async def approve(self, wf_id: str, phase: str | None, approved: bool, note: str | None) -> WorkflowRow:
        wf = self.store.get(wf_id)
        waiting = wf.get("waiting") or ""
        if wf["status"] != "pending" or not waiting.startswith("approval of phase"):
            raise Conflict(f"workflow {wf_id} is not waiting for an approval")
        current = wf.get("current_phase")
        if phase and phase != current:
            raise InvalidInput(f"workflow {wf_id} waits on phase {current}, not {phase}")
        if approved:
            self.store.update(wf_id, waiting=f"approved:{current}")
            self.events.workflow("phase_approved", "info", wf_id, phase=current, note=note)
            await self.queue.fill()
        else:
            self.store.set_status(wf_id, "failed", f"phase {current} rejected by operator"
                                  + (f": {note}" if note else ""), waiting=None)
            self.events.workflow("workflow_failed", "error", wf_id, reason=f"phase {current} rejected")
            await self.projector.project(wf_id)
        return self.store.get(wf_id)
