"""The workflows supervisor: a dynamic supervisor of runner subprocesses.

It owns the run queue (``pending`` workflows, started up to ``pool_size`` at
once), crash recovery and the projection of outcomes onto tasks:

- at start, and whenever a runner dies mid-phase, the interrupted phase is
  handled by its idempotency annotation: ``idempotent`` phases are retried
  automatically (agent phases resume their provider session); others block
  the workflow with ``"Idempotency: phase requires explicit retry decision"``;
- a workflow that ends ``failed`` blocks its task ("Blocked by status
  update"); ``completed`` marks it done; ``cancelled`` cancels it. Each
  projection happens once (recorded in ``projected``) and is retried while
  the subject backend is unavailable;
- in autonomous mode a tick takes ``ready`` tasks by priority and age (cron
  schedules are fired by the ``cron`` trigger plugin, through ``workflow/fire``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from animus.bus.rpc import AsyncControlClient
from animus.errors import Conflict, InvalidInput, NotFound, Unavailable
from animus.supervision.child import ChildSupervisor
from animus.supervision.exit_reason import ExitReason
from animus.supervision.spec import ChildSpec, Restart, Timeout
from animus.plugin_runtime import protocol as p
from animus.workflow.projection import Projector
from animus.workflow.recovery import recover
from animus.workflow.store import IDEMPOTENCY_BLOCK, TERMINAL, WorkflowStore

if TYPE_CHECKING:
    from animus.workflow.remote.ray_backend import RayBackend

__all__ = ["WorkflowSupervisor"]

SUBJECT_UNAVAILABLE = "Subject backend unavailable"


class WorkflowSupervisor(ChildSupervisor):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.state_root = Path(config["state_root"])
        self.project_root = Path(config["project_root"])
        self.store = WorkflowStore(self.state_root / "workflow.db")
        self.pool_size = int(config.get("pool_size", 2))
        self.interval = float(config.get("interval_secs", 5))
        self.autonomous = bool(config.get("autonomous"))
        self.drain_timeout = float(config.get("drain_timeout", 60))
        self.control = AsyncControlClient(self.ctx, config["control_endpoint"])
        self.projector = Projector(self.store, self.control, self.emit)
        self.sup.on_exit_hook = self.runner_exited
        self._fill_lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        from animus.workflow.api import WorkflowApi

        self.api = WorkflowApi(self)
        self.handlers.update(self.api.handlers())
        self.backend: RayBackend | None = None  # None: runners are local subprocesses
        runners = config.get("runners") or {}
        if runners.get("backend") == "ray":
            from animus.workflow.remote.ray_backend import RayBackend
            from animus.workflow.remote.ray_config import RayRunnersConfig

            self.backend = RayBackend(self, RayRunnersConfig.from_dict(runners.get("ray")), config["remote"])

    def workflow_config(self) -> Any:
        from animus.workflow.loader import read_compiled

        return read_compiled(self.state_root / "state")

    # -- lifecycle -----------------------------------------------------------
    async def after_start(self) -> None:
        for wf in self.store.by_status("running"):
            recover(self.store, wf, self.state_root, self.emit, at_start=True)
        if self.backend is not None:
            await self.backend.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def before_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self.backend is not None:
            await self.backend.shutdown()  # drain remote runs (local ones: the supervisor's shutdown)

    async def _tick_forever(self) -> None:
        await self.fill()
        while True:
            try:
                await self.tick()
            except Exception as exc:  # a bad tick must not stop the scheduler
                self.emit("scheduler_error", "error", {"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(self.interval)

    async def tick(self) -> dict[str, Any]:
        started: list[str] = []
        await self.projector.retry_pending()
        if self.autonomous:
            from animus.workflow.scheduler import pick_ready

            started += await pick_ready(self)
        await self.fill()
        return {"started": started}

    # -- queue ---------------------------------------------------------------
    def running_ids(self) -> set[str]:
        local = {c for c, rec in self.sup.children.items() if rec.proc and rec.proc.returncode() is None}
        return local | set(self.backend.runs if self.backend is not None else ())

    def tree_snapshot(self) -> list[dict[str, Any]]:
        return self.sup.snapshot() + (self.backend.snapshot() if self.backend is not None else [])

    def tree_changed(self) -> None:
        self._changed()

    def dispatchable(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        for wf in self.store.by_status("pending"):
            waiting = wf.get("waiting") or ""
            if not waiting or waiting.startswith("approved:") or (wf.get("not_before") and wf["not_before"] <= now):
                out.append(wf)
        return out

    async def fill(self) -> None:
        """Start queued workflows while there is room in the pool."""
        async with self._fill_lock:
            if self.backend is not None and not self.backend.connected:
                return  # runs wait in the queue until the cluster is reachable
            for wf in self.dispatchable():
                if len(self.running_ids()) >= self.pool_size:
                    return
                if wf["id"] in self.sup.children or (self.backend is not None and wf["id"] in self.backend.runs):
                    continue
                await self.start_runner(wf)

    async def start_runner(self, wf: dict[str, Any]) -> None:
        if wf.get("subject_id") and wf.get("subject_kind"):
            try:
                subject = await self.control.call("subject/call", {"kind": wf["subject_kind"], "verb": "get",
                                                                   "params": {"id": wf["subject_id"]}}, timeout=15)
                self.store.update(wf["id"], subject=subject)
            except Unavailable:
                self.block(wf["id"], SUBJECT_UNAVAILABLE)
                return
            except NotFound as exc:
                self.store.set_status(wf["id"], "failed", f"subject {wf['subject_id']} is gone: {exc.message}")
                return
        waiting = wf.get("waiting")
        self.store.update(wf["id"], status="running", runs=wf["runs"] + 1,
                          waiting=waiting if waiting and waiting.startswith("approved:") else None,
                          not_before=None)
        if self.backend is not None:
            await self.backend.submit(self.store.get(wf["id"]), wf["runs"] + 1)
            return
        env = dict(os.environ)
        env.update({p.ENV_STATE: str(self.state_root), p.ENV_PROJECT: self.config["project_root"],
                    p.ENV_BUS: self.config["bus_endpoint"], p.ENV_CONTROL: self.config["control_endpoint"]})
        spec = ChildSpec(id=wf["id"], start={"argv": [sys.executable, "-m", "animus.workflow.runner", wf["id"]],
                                             "env": env, "cwd": self.config["project_root"]},
                         restart=Restart.TEMPORARY, shutdown=Timeout(self.drain_timeout), role="workflow")
        await self.sup.start_child(spec, wait_ready=False)

    def block(self, wf_id: str, reason: str) -> None:
        self.store.set_status(wf_id, "blocked", reason)
        self.emit_wf("workflow_blocked", "error", wf_id, reason=reason, message=f"blocked: {reason}")

    def emit_wf(self, kind: str, level: str, wf_id: str, **data: Any) -> None:
        try:
            self.bus.publish("workflow", kind, level, data, workflow_id=wf_id)
        except Exception:
            pass

    # -- runner exits --------------------------------------------------------
    def runner_exited(self, child_id: str, reason: ExitReason, detail: str | None = None) -> None:
        """A runner ended (a local process, or a Ray task: ``detail`` then says how and where)."""
        self.sup.children.pop(child_id, None)
        if child_id in self.sup.policy.specs:
            self.sup.policy.remove(child_id)
        try:
            wf = self.store.get(child_id)
        except NotFound:
            return
        if wf["cancel_requested"] and wf["status"] not in TERMINAL:
            with self.store.tx() as c:
                self.store.cancel_running_attempts(c, child_id)
                self.store.update(child_id, c, status="cancelled", completed_at=time.time())
                self.store.checkpoint(c, child_id, "cancelled", None)
            self.emit_wf("workflow_cancelled", "warn", child_id, message="cancelled (runner killed)")
        elif wf["status"] == "running":
            recover(self.store, wf, self.state_root, self.emit, crash=detail or reason.describe())
        loop = asyncio.get_running_loop()
        loop.create_task(self._after_exit(child_id))

    async def _after_exit(self, wf_id: str) -> None:
        await self.projector.project(self.store.get(wf_id))
        await self.fill()

    # -- operator actions ----------------------------------------------------
    async def cancel(self, wf_id: str) -> dict[str, Any]:
        wf = self.store.get(wf_id)
        if wf["status"] in TERMINAL:
            raise Conflict(f"workflow {wf_id} is already {wf['status']}")
        self.store.update(wf_id, cancel_requested=1)
        if wf_id in self.sup.children:
            await self.sup.stop_child(wf_id)
        elif self.backend is not None and wf_id in self.backend.runs:
            await self.backend.stop(wf_id)
        else:
            self.store.set_status(wf_id, "cancelled", waiting=None)
            self.emit_wf("workflow_cancelled", "warn", wf_id, message="cancelled by operator")
            await self.projector.project(self.store.get(wf_id))
        return self.store.get(wf_id)

    async def resume(self, wf_id: str, force: bool) -> dict[str, Any]:
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
        self.emit_wf("workflow_resumed_by_operator", "info", wf_id, force=force, previous=status)
        await self.fill()
        return self.store.get(wf_id)

    async def approve(self, wf_id: str, phase: str | None, approved: bool, note: str | None) -> dict[str, Any]:
        wf = self.store.get(wf_id)
        waiting = wf.get("waiting") or ""
        if wf["status"] != "pending" or not waiting.startswith("approval of phase"):
            raise Conflict(f"workflow {wf_id} is not waiting for an approval")
        current = wf.get("current_phase")
        if phase and phase != current:
            raise InvalidInput(f"workflow {wf_id} waits on phase {current}, not {phase}")
        if approved:
            self.store.update(wf_id, waiting=f"approved:{current}")
            self.emit_wf("phase_approved", "info", wf_id, phase=current, note=note)
            await self.fill()
        else:
            self.store.set_status(wf_id, "failed", f"phase {current} rejected by operator"
                                  + (f": {note}" if note else ""), waiting=None)
            self.emit_wf("workflow_failed", "error", wf_id, reason=f"phase {current} rejected")
            await self.projector.project(self.store.get(wf_id))
        return self.store.get(wf_id)

