"""A supervisor: carries out what the restart policy decides.

It owns its children (nothing it spawns outlives it), starts them in order,
and counts a child as started only when the child acknowledged (the owner
calls ``child_ready``). Exits become one structured event each and go to the
pure ``RestartPolicy``; its decision is carried out here. An operator's stop
is not a crash: it never counts against a budget, and the child stays down.
Shutdown is in reverse start order: SIGTERM, the child's timeout, SIGKILL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from animus.process import handle as process
from animus.supervision.exit_reason import ExitReason
from animus.supervision.policy import Disable, Escalate, Ignore, RestartChildren, RestartPolicy
from animus.supervision.spec import ChildSpec, Restart, SupervisorFlags, check_children

__all__ = ["ChildState", "ChildRecord", "Supervisor", "Launcher", "Emit"]

Launcher = Callable[[ChildSpec], process.ChildProcess]
Emit = Callable[[str, str, dict[str, Any]], None]  # kind, level, data


class ChildState(str, Enum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    DISABLED = "disabled"
    STOPPED = "stopped"


@dataclass
class ChildRecord:
    spec: ChildSpec
    state: ChildState = ChildState.STOPPED
    proc: process.ChildProcess | None = None
    restarts: int = 0
    last_error: str = ""
    failure: str = ""  # why the supervisor itself killed the current process (hung, bad handshake)
    info: dict[str, Any] = field(default_factory=dict)
    ready: asyncio.Future[None] | None = None
    stopping: bool = False
    timer: asyncio.TimerHandle | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)

    def snapshot(self) -> dict[str, Any]:
        return {
            "name": self.spec.id,
            "kind": self.spec.type.value,
            "role": self.spec.role,
            "pid": self.proc.pid if self.proc and self.state not in (ChildState.STOPPED, ChildState.DISABLED) else None,
            "create_time": self.proc.create_time if self.proc else None,  # the root records it: no lookup there
            "state": "running" if self.state is ChildState.STARTING else self.state.value,
            "restarts": self.restarts,
            "last_error": self.last_error or None,
            "children": self.info.get("children", []),
        }


class Supervisor:
    def __init__(
        self,
        name: str,
        flags: SupervisorFlags,
        children: list[ChildSpec],
        launcher: Launcher,
        emit: Emit,
        ready_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        disabled: set[str] | None = None,
    ) -> None:
        check_children(children)
        self.name = name
        self.flags = flags
        self.launcher = launcher
        self.emit = emit
        self.ready_timeout = ready_timeout
        self.clock = clock
        self.policy = RestartPolicy(flags, children)
        self.children: dict[str, ChildRecord] = {c.id: ChildRecord(c) for c in children}
        self.escalated = asyncio.Event()
        self.escalation_reason = ""
        self.closing = False
        self.on_change: Callable[[], None] = lambda: None
        self.on_exit_hook: Callable[[str, ExitReason], None] = lambda child, reason: None
        # who owns the tasks this supervisor starts (restarts, terminations): the process's nursery
        self.spawn: Callable[[Coroutine[Any, Any, Any]], Any] = lambda coro: asyncio.get_running_loop().create_task(coro)
        for child in disabled or ():
            if child in self.children:
                self.policy.disabled.add(child)
                self.children[child].state = ChildState.DISABLED
                self.children[child].last_error = "disabled before this supervisor restarted"

    # -- starting ------------------------------------------------------------
    async def start(self, after: Mapping[str, Sequence[str]] | None = None) -> None:
        """Start every child in order; a child that fails to start is handled
        by the restart policy like any other exit.

        With ``after`` (child -> the children it needs started first), every
        child starts as soon as those have: independent children start at
        once, and the start costs the slowest chain rather than the sum."""
        todo = [c for c in self.policy.order if self.children[c].state is not ChildState.DISABLED]
        if after is None:
            for child_id in todo:
                await self._start_one(child_id)
            return
        started: dict[str, asyncio.Future[Any]] = {}

        async def one(child_id: str) -> None:
            for first in after.get(child_id, ()):
                if first in started:
                    await asyncio.shield(started[first])
            await self._start_one(child_id)

        for child_id in todo:
            started[child_id] = asyncio.ensure_future(one(child_id))
        await asyncio.gather(*started.values())

    async def start_child(self, spec: ChildSpec, wait_ready: bool = True) -> ChildRecord:
        """Add a child at run time (dynamic supervisor) and start it."""
        if spec.id in self.children:
            raise ValueError(f"child {spec.id!r} already exists")
        self.policy.add(spec)
        self.children[spec.id] = ChildRecord(spec)
        await self._start_one(spec.id, wait_ready=wait_ready)
        return self.children[spec.id]

    async def _start_one(self, child_id: str, wait_ready: bool = True) -> bool:
        rec = self.children[child_id]
        rec.timer = None
        rec.stopping = False
        rec.failure = ""
        rec.exited = asyncio.Event()
        loop = asyncio.get_running_loop()
        rec.ready = loop.create_future()
        try:
            rec.proc = self.launcher(rec.spec)
        except Exception as exc:  # cannot even exec: counts as a start failure
            rec.last_error = f"failed to start: {exc}"
            self.emit("child_start_failed", "error", {"child": child_id, "error": rec.last_error})
            self._on_exit(child_id, None, 1)
            return False
        rec.state = ChildState.STARTING
        self.policy.started(child_id, self.clock())
        proc = rec.proc
        process.watch(loop, proc, lambda p, status: self._on_exit(child_id, p, status),
                      on_stderr=lambda line: self._on_stderr(child_id, line))
        self.on_change()
        if not wait_ready:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(rec.ready), self.ready_timeout)
        except asyncio.TimeoutError:
            ready = rec.ready
            if ready is not None and ready.done() and not ready.cancelled() and ready.exception() is None:
                return True  # acknowledged as the deadline passed
            if rec.proc is proc and proc.returncode() is None:
                rec.last_error = rec.failure = (
                    f"no ready acknowledgement within {self.ready_timeout:g}s (hung at start?)")
                self.emit("child_start_timeout", "error", {"child": child_id, "pid": proc.pid,
                                                           "error": rec.last_error})
                await process.terminate(proc, rec.spec.shutdown)
            return False
        except Exception:
            return False
        return True

    def child_ready(self, child_id: str, pid: int | None = None, info: dict[str, Any] | None = None) -> bool:
        """The child acknowledged its start (READY / handshake done)."""
        rec = self.children.get(child_id)
        if rec is None or rec.proc is None or (pid is not None and pid != rec.proc.pid):
            return False
        if rec.failure:  # its start already failed (timed out, bad handshake): it is being stopped
            return False
        if info:
            rec.info.update(info)
        if rec.state is ChildState.STARTING:
            rec.state = ChildState.RUNNING
            self.emit("child_started", "info", {"child": child_id, "pid": rec.proc.pid,
                                                "restarts": rec.restarts})
            self.on_change()
        if rec.ready is not None and not rec.ready.done():
            rec.ready.set_result(None)
        return True

    def child_failed(self, child_id: str, error: str) -> None:
        """The owner saw the child fail at start (bad handshake): record and kill it."""
        rec = self.children.get(child_id)
        if rec is None or rec.proc is None:
            return
        rec.last_error = rec.failure = error
        if rec.ready is not None and not rec.ready.done():
            rec.ready.set_exception(RuntimeError(error))
            rec.ready.exception()  # retrieved: nobody else must see it unhandled
        proc = rec.proc
        self.spawn(process.terminate(proc, rec.spec.shutdown))

    def _on_stderr(self, child_id: str, line: str) -> None:
        self.emit("child_stderr", "debug", {"child": child_id, "line": line[:2000]})

    # -- exits ---------------------------------------------------------------
    def _on_exit(self, child_id: str, proc: process.ChildProcess | None, status: int) -> None:
        rec = self.children.get(child_id)
        if rec is None or (proc is not None and rec.proc is not proc):
            return
        reason = ExitReason.from_status(status, requested=rec.stopping or self.closing)
        if proc is not None and not reason.requested:
            # the supervisor's own reason for a kill says more than the victim's stderr
            rec.last_error = rec.failure or proc.last_error() or reason.describe()
        if rec.ready is not None and not rec.ready.done():
            rec.ready.set_exception(RuntimeError(rec.last_error or reason.describe()))
            rec.ready.exception()
        rec.exited.set()
        self.emit("child_exited", "info" if reason.normal else "warn", {
            "child": child_id, "pid": proc.pid if proc else None, "exit_code": reason.code,
            "signal": reason.signal, "reason": reason.describe(), "requested": reason.requested,
            "last_error": None if reason.requested else rec.last_error,
        })
        if self.closing:
            rec.state = ChildState.STOPPED
            return
        # a sibling stopped by a restart plan (one_for_all, rest_for_one) is the plan's to start
        if not (reason.requested and rec.state is ChildState.RESTARTING):
            self._decide(rec, reason)
        self.on_change()
        self.on_exit_hook(child_id, reason)

    def _decide(self, rec: ChildRecord, reason: ExitReason) -> None:
        """Ask the restart policy about an exit and carry out its decision."""
        child_id = rec.spec.id
        decision = self.policy.on_exit(child_id, reason, self.clock())
        if isinstance(decision, Ignore):
            rec.state = ChildState.STOPPED
            if rec.spec.restart is not Restart.PERMANENT and not rec.stopping:
                # a finished dynamic child (a workflow run) leaves the tree
                self.children.pop(child_id, None)
                self.policy.remove(child_id)
        elif isinstance(decision, Disable):
            rec.state = ChildState.DISABLED
            self.emit("plugin_disabled", "error", {"plugin": child_id, "child": child_id,
                                                   "role": rec.spec.role, "restarts": decision.restarts,
                                                   "last_error": rec.last_error})
        elif isinstance(decision, Escalate):
            rec.state = ChildState.STOPPED
            self.escalation_reason = decision.reason
            self.emit("supervisor_escalated", "error", {"supervisor": self.name, "reason": decision.reason})
            self.escalated.set()
        else:
            self._restart(decision)

    def _restart(self, decision: RestartChildren) -> None:
        failed = self.children[decision.failed]
        failed.restarts += 1
        for child_id in decision.start:
            self.children[child_id].state = ChildState.RESTARTING
        self.emit("child_restarting", "warn", {"child": decision.failed, "delay": decision.delay,
                                               "restart": decision.restart_number,
                                               "max_restarts": failed.spec.backoff.max_restarts})

        async def carry_out() -> None:
            for child_id in decision.stop:
                rec = self.children.get(child_id)
                if rec is not None:
                    await self._stop(rec)
            if decision.delay:
                await asyncio.sleep(decision.delay)
            for child_id in decision.start:
                rec = self.children.get(child_id)
                if rec is not None and rec.state is ChildState.RESTARTING and not self.closing:
                    await self._start_one(child_id)

        self.spawn(carry_out())

    # -- operator actions ----------------------------------------------------
    async def stop_child(self, child_id: str) -> ChildRecord:
        rec = self.children[child_id]
        if rec.timer is not None:
            rec.timer.cancel()
        await self._stop(rec)
        rec.state = ChildState.STOPPED
        self.on_change()
        return rec

    async def _stop(self, rec: ChildRecord) -> None:
        """The one way to stop a child: terminate it and wait until its exit is recorded."""
        rec.stopping = True
        if rec.proc is not None and not rec.exited.is_set():
            await process.terminate(rec.proc, rec.spec.shutdown)
            await rec.exited.wait()  # the exit event is emitted before we go on

    async def restart_child(self, child_id: str) -> ChildRecord:
        rec = self.children[child_id]
        if rec.state is ChildState.DISABLED:
            raise ValueError(f"{child_id} is disabled until the daemon restarts")
        if rec.state in (ChildState.RUNNING, ChildState.STARTING):
            await self.stop_child(child_id)
        await self._start_one(child_id)
        return rec

    async def shutdown(self) -> None:
        """Stop every child in reverse start order."""
        self.closing = True
        for child_id in reversed(list(self.policy.order)):
            rec = self.children.get(child_id)
            if rec is not None:
                await self._stop(rec)
                rec.state = ChildState.STOPPED
        self.on_change()

    def snapshot(self) -> list[dict[str, Any]]:
        return [self.children[c].snapshot() for c in self.policy.order if c in self.children]

    def live_pids(self) -> dict[int, float]:
        return {
            r.proc.pid: r.proc.create_time
            for r in self.children.values()
            if r.proc is not None and r.proc.returncode() is None
        }
