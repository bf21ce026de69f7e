"""Where workflow runners run: ``RunnerLauncher``, and its local implementation.

A launcher starts one runner per run, stops one (operator cancel), says which
runs it has, and reports each runner's end through ``LauncherHooks.exited``.
``LocalRunners`` starts runner subprocesses as dynamic children of the
workflows supervisor; ``remote.ray_backend.RayBackend`` starts them as Ray
tasks. The run queue and the operator actions only see this protocol.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from animus.plugin_runtime import protocol as p
from animus.supervision.exit_reason import ExitReason
from animus.supervision.service import DynamicChildren
from animus.supervision.spec import RUN_ROLE, ChildSpec, Restart, Timeout
from animus.workflow.events import WorkflowEvents
from animus.workflow.git_settings import ENV_GIT
from animus.workflow.settings import WorkflowSettings
from animus.workflow.store import WorkflowStore, WorkflowRow

__all__ = ["LauncherHooks", "LocalRunners", "RunnerLauncher"]


@dataclass(frozen=True)
class LauncherHooks:
    """The narrow things a launcher may use."""

    store: WorkflowStore
    events: WorkflowEvents
    exited: Callable[[str, ExitReason, str | None], None]  # a runner ended (detail: how and where)
    changed: Callable[[], None]  # the tree rows changed
    fill: Callable[[], Awaitable[None]]  # room may have appeared: start queued runs
    spawn: Callable[[Coroutine[Any, Any, Any]], Any]  # start an owned task


class RunnerLauncher(Protocol):
    @property
    def available(self) -> bool: ...

    def running(self) -> set[str]: ...

    def has(self, wf_id: str) -> bool: ...

    async def start(self) -> None: ...

    async def launch(self, wf: WorkflowRow, run_no: int) -> None: ...

    async def stop_run(self, wf_id: str) -> None: ...

    async def shutdown(self) -> None: ...

    def snapshot(self) -> list[dict[str, Any]]: ...


class LocalRunners:
    """Runner subprocesses (``python -m animus.workflow.runner <id>``) as temporary children."""

    available = True

    def __init__(self, children: DynamicChildren, settings: WorkflowSettings, hooks: LauncherHooks) -> None:
        self.children = children
        self.settings = settings
        self._env: dict[str, str] | None = None  # every runner's environment but its run number
        children.on_exit(lambda child, reason: hooks.exited(child, reason, None))

    def running(self) -> set[str]:
        return self.children.running()

    def has(self, wf_id: str) -> bool:
        return wf_id in self.children

    async def start(self) -> None:
        """Nothing to connect to: local runners start on demand."""

    async def launch(self, wf: WorkflowRow, run_no: int) -> None:
        s = self.settings
        if self._env is None:  # the settings are the supervisor's for its life
            self._env = dict(os.environ) | {
                p.ENV_STATE: str(s.state_root), p.ENV_PROJECT: str(s.project_root), p.ENV_BUS: s.bus_endpoint,
                p.ENV_CONTROL: s.control_endpoint, "ANIMUS_COMMAND_ENV": ",".join(s.command_env),
                ENV_GIT: s.git.to_env()}
        env = self._env | {"ANIMUS_RUN_NUMBER": str(run_no)}
        spec = ChildSpec(id=wf["id"], start={"argv": [sys.executable, "-m", "animus.workflow.runner", wf["id"]],
                                             "env": env, "cwd": str(s.project_root)},
                         restart=Restart.TEMPORARY, shutdown=Timeout(s.drain_timeout), role=RUN_ROLE)
        await self.children.start(spec)

    async def stop_run(self, wf_id: str) -> None:
        await self.children.stop(wf_id)

    async def shutdown(self) -> None:
        """Local runners drain with the supervisor's own shutdown."""

    def snapshot(self) -> list[dict[str, Any]]:
        return []  # the supervisor shows its children itself
