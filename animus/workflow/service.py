"""The workflows service: the business of the workflows supervisor.

The supervisor (generic, ``supervision.child``) supervises runner processes;
this service decides what runs. It composes small parts, each owning one
thing, and hands each only the collaborators it needs:

- ``RunQueue``: pending runs, started up to ``pool_size`` at once;
- a ``RunnerLauncher``: local runner subprocesses, or Ray tasks;
- ``Operations``: a runner's end (crash recovery by idempotency), cancel,
  resume, approve;
- ``Projector``: outcomes onto tasks, once (completed → done, failed →
  blocked "Blocked by status update", cancelled → cancelled);
- ``Intake`` and ``Scheduler``: new runs, and the tick (autonomous mode
  takes ``ready`` tasks by priority and age);
- ``WorkflowApi``: the ``workflow/*`` control methods over all of them.

At start, what the commands of a killed predecessor's runners left behind is
killed (``command_group``) and runs left ``running`` are recovered first;
then, before the first queued run starts, the worktrees of runs that are over
are swept (``worktree_cleanup``; ``daemon start --no-startup-cleanup`` skips it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from animus.bus.rpc import AsyncControlClient
from animus.supervision.exit_reason import ExitReason
from animus.supervision.service import Handler, ServiceContext
from animus.workflow.api import ApiParts, WorkflowApi
from animus.workflow import command_group
from animus.workflow.config import read_compiled
from animus.workflow.events import WorkflowEvents
from animus.workflow.intake import Intake
from animus.workflow.launcher import LauncherHooks, LocalRunners, RunnerLauncher
from animus.workflow.model import WorkflowConfig
from animus.workflow.operations import Operations
from animus.workflow.projection import Projector
from animus.workflow.queue import RunQueue
from animus.workflow.recovery import recover
from animus.workflow.scheduler import Scheduler
from animus.workflow.settings import WorkflowSettings
from animus.workflow.store import WorkflowStore
from animus.workflow.worktree_cleanup import sweep

__all__ = ["WorkflowService"]


class WorkflowService:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.settings = s = WorkflowSettings.from_config(ctx.config)
        self.store = WorkflowStore(s.state_root / "workflow.db")
        self.events = WorkflowEvents(ctx.emit, ctx.publish, self.store)
        self.projector = Projector(self.store, AsyncControlClient(ctx.zmq, s.control_endpoint), ctx.emit)
        hooks = LauncherHooks(store=self.store, events=self.events, exited=self._exited, changed=ctx.changed,
                              fill=self._fill, spawn=ctx.spawn)
        self.remote = None
        self.launcher: RunnerLauncher
        if s.ray:
            from animus.workflow.remote.ray_backend import RayBackend
            from animus.workflow.remote.ray_config import RayRunnersConfig

            self.remote = RayBackend(hooks, s, RayRunnersConfig.from_dict(s.runners.get("ray")))
            self.launcher = self.remote
        else:
            self.launcher = LocalRunners(ctx.children, s, hooks)
        self.queue = RunQueue(self.store, self.launcher, self.projector, self.events, s.pool_size)
        self.operations = Operations(self.store, self.launcher, self.queue, self.projector, self.events,
                                     s.state_root, ctx.spawn)
        self.intake = Intake(self.store, self.queue, self.projector, self.events, self.workflow_config)
        self.scheduler = Scheduler(self.queue, self.projector, self.intake, self.events, s.scheduler_kinds,
                                   s.autonomous)
        self.api = WorkflowApi(ApiParts(self.store, self.queue, self.intake, self.operations, self.scheduler,
                                        self.events, self.workflow_config, s.state_root, self.remote))
        self._ticker: asyncio.Task[None] | None = None

    def workflow_config(self) -> WorkflowConfig:
        return read_compiled(self.settings.state_root / "state")

    def _exited(self, wf_id: str, reason: ExitReason, detail: str | None) -> None:
        self.operations.runner_exited(wf_id, reason, detail)

    async def _fill(self) -> None:
        await self.queue.fill()

    # -- the ChildService protocol -------------------------------------------
    def handlers(self) -> Mapping[str, Handler]:
        return self.api.handlers()

    def extra_children(self) -> list[dict[str, Any]]:
        return self.launcher.snapshot()

    def abandon(self) -> None:
        """The supervisor is dying with no time to stop (its root is gone): kill what the
        runners' commands left behind, which is outside the runners' process groups."""
        command_group.sweep_all(self.settings.state_root / "runs")

    async def start(self) -> None:
        command_group.sweep_all(self.settings.state_root / "runs")  # what a killed predecessor's runners left
        for wf in self.store.by_status("running"):
            recover(self.store, wf, self.settings.state_root, self.events.emit, at_start=True)
        await self.launcher.start()
        self._ticker = self.ctx.spawn(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.launcher.shutdown()  # remote runs drain here; local ones with the supervisor

    async def _startup_cleanup(self) -> None:
        try:
            report = await asyncio.to_thread(sweep, self.settings)
        except Exception as exc:  # a broken repository must not keep runs from starting
            self.events.emit("worktree_cleanup", "error", {"error": f"{type(exc).__name__}: {exc}",
                                                           "message": f"startup cleanup failed: {exc}"})
            return
        for wf_id, path in report.removed.items():
            self.events.workflow("worktree_removed", "info", wf_id, path=path,
                                 message=f"startup cleanup removed worktree {path}; its branch is kept")
        for wf_id, why in report.kept.items():
            self.events.workflow("worktree_kept", "warn", wf_id, message=f"startup cleanup kept the worktree: {why}")
        if not (report.removed or report.kept):
            return
        self.events.emit("worktree_cleanup", "info", {
            "removed": sorted(report.removed), "kept": sorted(report.kept),
            "message": f"startup cleanup: {len(report.removed)} worktree(s) removed, {len(report.kept)} kept"})

    async def _tick_forever(self) -> None:
        if self.settings.git.startup_cleanup:
            await self._startup_cleanup()
        await self.queue.fill()
        while True:
            try:
                await self.scheduler.tick()
            except Exception as exc:  # a subject backend's trouble must not stop the scheduler
                self.events.emit("scheduler_error", "error", {"error": f"{type(exc).__name__}: {exc}"})
            await asyncio.sleep(self.settings.interval_secs)
