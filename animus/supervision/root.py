"""The root supervisor: the daemon process itself.

It owns the bus broker, the control socket and the ``tree`` socket, and
supervises one child supervisor process per entry of the application's tree
(``TreeSpec``; Animus's is ``animus.daemon.tree``). Child supervisors connect
to the ``tree`` ROUTER, acknowledge their start (READY) and push their
subtree on every change, so ``daemon status`` answers from memory even while
children crash-loop (``tree_link``). SIGTERM stops the tree in reverse order;
a SIGKILLed root takes the tree with it (every child has a parent-death
signal), and the next start reaps what survived (``pidlock``).

The root knows child specs, never the business of its children: what each
child supervisor is configured with, and which control methods exist, come
from the application.
"""

from __future__ import annotations

import asyncio
import json
import signal
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import zmq
import zmq.asyncio

from animus import __version__
from animus.bus.broker import Broker
from animus.bus.codec import MAX_FRAME_BYTES
from animus.bus.metrics import Metrics
from animus.bus.publisher import Publisher
from animus.bus.rpc import serve_request
from animus.errors import Unavailable
from animus.logs import get_logger
from animus.process import handle as process
from animus.state.files import atomic_write
from animus.state.scope import Scope
from animus.supervision.edge import RemoteEdge
from animus.supervision.holds import StartHolds
from animus.supervision.launcher import Launcher
from animus.supervision.pidlock import record_pids
from animus.supervision.spec import ChildSpec, SupervisorFlags
from animus.supervision.supervisor import Supervisor
from animus.supervision.tasks import TaskOwner
from animus.supervision.tree_link import TreeLink
from animus.tasks import Nursery

__all__ = ["ControlHandlers", "Root", "RootSettings", "TreeSpec"]

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
ControlHandlers = tuple[dict[str, Handler], dict[str, Handler]]  # local (ipc), remote runners' (tcp, token)


@dataclass(frozen=True)
class RootSettings:
    intensity: int = 5
    period: float = 10.0
    ready_timeout: float = 10.0
    bus_tcp: tuple[str, ...] = ()  # extra tcp:// inputs of the bus (CURVE)
    runner_address: str | None = None  # where remote runners reach the daemon (tcp control + bus input)
    autonomous: bool = False


class TreeSpec(Protocol):
    """The application's tree of child supervisors."""

    def child_specs(self) -> tuple[list[ChildSpec], dict[str, str]]:
        """The child supervisors in start order, and those skipped (name -> why)."""
        ...

    def child_config(self, name: str, base: dict[str, Any], remote: dict[str, str]) -> dict[str, Any]:
        """``base`` (name, endpoints, disabled children) completed for child supervisor ``name``."""
        ...

    def child_env(self, name: str, runner_env: dict[str, str]) -> dict[str, str]:
        """Extra environment for ``name`` at spawn: secrets travel here, never in its config file."""
        ...

    def start_after(self) -> dict[str, tuple[str, ...]] | None:
        """Child supervisor -> those it needs started first; the rest start at once (None: in order)."""
        ...


class Root:
    def __init__(self, scope: Scope, settings: RootSettings, tree: TreeSpec,
                 control: Callable[[Root], ControlHandlers], launcher: Launcher | None = None) -> None:
        self.scope = scope
        self.launcher = launcher  # forks child supervisors from a zygote (else each is exec'd)
        self.settings = settings
        self.tree_spec = tree
        self.control_factory = control
        self.log = get_logger()
        self.metrics = Metrics()
        self.started = time.time()
        self.ctx = zmq.Context()
        self.actx = zmq.asyncio.Context.shadow(self.ctx.underlying)
        self.stopping = asyncio.Event()
        self.sup: Supervisor | None = None
        self.broker: Broker | None = None
        self.bus: Publisher | None = None
        self.edge: RemoteEdge | None = None  # what listens on tcp:// (bus.tcp, remote runners)
        self.task_failure: str | None = None  # a receive loop that kept crashing (exit 1)
        self.link: TreeLink | None = None
        self.requests = Nursery()  # owns every control request being answered
        self._pids_pending = False
        self._pids_written: dict[int, float] | None = None  # what pids.json holds
        self.holds: StartHolds | None = None  # child supervisors started held until their needs are up

    # -- what the control methods read ---------------------------------------
    @property
    def skipped(self) -> dict[str, str]:
        return self.link.skipped if self.link is not None else {}

    async def ask(self, supervisor: str, method: str, params: dict[str, Any], timeout: float = 10.0) -> Any:
        assert self.link is not None
        return await self.link.ask(supervisor, method, params, timeout)

    def endpoint(self, name: str) -> str:
        return self.scope.endpoint(name)

    def emit(self, kind: str, level: str, data: dict[str, Any], cat: str = "supervisor") -> None:
        if self.bus is not None:
            self.bus.publish(cat, kind, level, {"supervisor": "root", **data})

    # -- child supervisors ---------------------------------------------------
    def _spawn_child_supervisor(self, spec: ChildSpec) -> process.ChildProcess:
        name = spec.id
        base = {
            "name": name, "tree_endpoint": self.endpoint("tree"), "plugin_endpoint": self.endpoint(f"plugins.{name}"),
            "bus_endpoint": self.endpoint("bus.in"), "bus_out_endpoint": self.endpoint("bus.out"),
            "control_endpoint": self.endpoint("control"), "project_root": str(self.scope.project_root),
            "state_root": str(self.scope.root), "intensity": self.settings.intensity,
            "period": self.settings.period, "ready_timeout": self.settings.ready_timeout,
            "disabled": sorted(self.link.disabled.get(name, ()) if self.link else ()), "children": [],
            "hold": self.holds is not None and self.holds.hold(name),
        }
        remote = self.edge.remote_endpoints if self.edge is not None else {}
        cfg = self.tree_spec.child_config(name, base, dict(remote))
        path = self.scope.state_dir / "supervisors" / f"{name}.json"
        atomic_write(path, json.dumps(cfg, indent=1).encode(), 0o600, durable=False)  # rewritten at every spawn
        env = dict(os.environ)
        env.update(self.tree_spec.child_env(name, self.edge.runner_env() if self.edge is not None else {}))
        argv = [sys.executable, "-m", "animus.supervision.child", str(path)]
        if self.launcher is not None:
            return self.launcher(replace(spec, start={"argv": argv, "env": env, "cwd": str(self.scope.project_root)}))
        return process.spawn(argv, env, self.scope.project_root)

    def build_tree(self) -> Supervisor:
        specs, skipped = self.tree_spec.child_specs()
        assert self.link is not None
        self.link.skipped.update(skipped)
        flags = SupervisorFlags(intensity=self.settings.intensity, period=self.settings.period)
        sup = Supervisor("root", flags, specs, self._spawn_child_supervisor, self.emit,
                         ready_timeout=max(30.0, self.settings.ready_timeout * 3))
        sup.on_change = self._changed
        sup.on_exit_hook = self._child_supervisor_exited
        return sup

    def _child_supervisor_exited(self, name: str, reason: Any) -> None:
        """A child supervisor died: its workers died with it (parent-death signal);
        kill what they left in their process groups, and fail at once what it was asked
        (a plugin call would otherwise wait out its whole timeout: up to a phase's)."""
        if self.link is not None:
            self.link.pending.fail(self.link.pending.owed_by(name),
                                   Unavailable(f"the {name} supervisor exited while handling the request",
                                               fix="retry: it is restarted; animus daemon status"))
        if self.sup is None or name not in self.sup.children:
            return
        process.kill_groups(self.sup.children[name].info.get("worker_create_times", {}))

    # -- control socket ------------------------------------------------------
    async def serve_control(self, sock: zmq.asyncio.Socket, handlers: dict[str, Handler],
                            token: str | None = None) -> None:
        """Answer control requests on the ipc socket, or (with ``token``) on the remote runners' tcp one."""

        async def answer(ident: bytes, raw: bytes) -> None:
            reply = await serve_request(raw, handlers, self._malformed_control, token)
            if reply is not None:
                try:
                    await sock.send_multipart([ident, reply])
                except zmq.ZMQError:
                    pass  # the client went away

        while True:
            frames = await sock.recv_multipart()
            if len(frames) != 2:
                self._malformed_control("wrong frame count")
                continue
            self.requests.spawn(answer(frames[0], frames[1]))

    def _malformed_control(self, reason: str) -> None:
        self.metrics.inc("control_requests_malformed_total")

    def _task_gave_up(self, name: str, reason: str) -> None:
        self.task_failure = f"{name}: {reason}"
        self.stopping.set()

    # -- pid records ---------------------------------------------------------
    def all_pids(self) -> dict[int, float]:
        pids: dict[int, float] = {}
        if self.sup is None:
            return pids
        pids.update(self.sup.live_pids())
        for rec in self.sup.children.values():  # the workers, as the tree link looked them up
            pids.update(rec.info.get("worker_create_times", {}))
        return pids

    def _changed(self) -> None:
        self._record_pids()
        if self.holds is not None:
            self.holds.release()

    def _record_pids(self) -> None:
        """Write the pid record once per turn of the loop, however many changes came in it."""
        if self._pids_pending:
            return
        self._pids_pending = True

        try:
            asyncio.get_running_loop().call_soon(self._write_pids)
        except RuntimeError:  # no loop (closing): write now
            self._write_pids()

    def _write_pids(self) -> None:
        self._pids_pending = False
        pids = self.all_pids()
        if pids != self._pids_written and record_pids(self.scope, pids):  # not written: the next change tries
            self._pids_written = pids  # a run's start or end changes only the tree shown, not this

    # -- lifecycle -----------------------------------------------------------
    def _bind(self) -> None:
        run_dir = self.scope.run_dir()
        for stale in run_dir.iterdir():
            stale.unlink(missing_ok=True)
        self.broker = Broker(self.ctx, [self.endpoint("bus.in")], [self.endpoint("bus.out")],
                             self.scope.events_log, self.metrics)
        self.broker.start()
        if self.settings.bus_tcp or self.settings.runner_address:
            self.edge = RemoteEdge(self.ctx, self.actx, self.scope.root, self.metrics, list(self.settings.bus_tcp),
                                   self.broker.internal_endpoint, self.settings.runner_address)
        self.bus = Publisher(self.endpoint("bus.in"), f"daemon/root:{os.getpid()}", self.ctx)
        self.bus.wait_ready(5)
        self.control = self.actx.socket(zmq.ROUTER)
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)  # bigger could never be decoded anyway
        self.control.bind(self.endpoint("control"))
        tree = self.actx.socket(zmq.ROUTER)
        tree.setsockopt(zmq.ROUTER_MANDATORY, 1)
        tree.setsockopt(zmq.ROUTER_HANDOVER, 1)
        tree.setsockopt(zmq.LINGER, 0)
        tree.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        tree.bind(self.endpoint("tree"))
        self.link = TreeLink(tree, self.metrics, self._record_pids)

    def _serve(self, tasks: TaskOwner) -> None:
        local, remote = self.control_factory(self)
        assert self.link is not None
        link = self.link
        tasks.start("serve_tree", link.serve)
        tasks.start("serve_control", lambda: self.serve_control(self.control, local))
        if self.edge is not None and self.edge.control is not None:
            tcp, token = self.edge.control, self.edge.token
            tasks.start("serve_control_tcp", lambda: self.serve_control(tcp, remote, token))

    async def run(self, ready_fd: int | None) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self._bind()
        assert self.broker is not None and self.bus is not None and self.link is not None
        self.metrics.gauge_sources["root"] = self._gauges
        self.emit("daemon_startup", "info", {
            "pid": os.getpid(), "version": __version__, "state_root": str(self.scope.root),
            "project_root": str(self.scope.project_root), "autonomous": self.settings.autonomous,
            "bus_in": self.broker.bound_in + (self.edge.gate.bound if self.edge else []),
            "log_repaired_bytes": self.broker.log.repaired_bytes,
        }, cat="daemon")
        self.log.info("daemon starting", state_root=str(self.scope.root), pid=os.getpid())
        async with self.requests:
            code = await self._run_tree(loop, ready_fd)
            self.requests.cancel_all()
        await self._close()
        self.log.info("daemon stopped", exit_code=code)
        return code

    async def _run_tree(self, loop: asyncio.AbstractEventLoop, ready_fd: int | None) -> int:
        assert self.link is not None
        tasks = TaskOwner(self.log, lambda kind, level, data: self.emit(kind, level, data, cat="daemon"),
                          self._task_gave_up)
        self._serve(tasks)
        self.sup = self.link.sup = self.build_tree()
        after = self.tree_spec.start_after()
        if after is not None:  # all at once, those that need others held until those are up
            self.holds = StartHolds(after, self.link.tell, self.requests.spawn)
            self.holds.sup = self.sup
            self.link.on_held = self.holds.held
        await self.sup.start(None if after is None else {})
        self._write_pids()
        names = [c["name"] for c in self.sup.snapshot()]
        self.emit("daemon_ready", "info", {"tree": names}, cat="daemon")
        self.log.info("daemon ready", children=names)
        if ready_fd is not None:
            os.write(ready_fd, json.dumps({"ok": True, "pid": os.getpid(),
                                           "state_root": str(self.scope.root)}).encode())
            os.close(ready_fd)
        escalated = loop.create_task(self.sup.escalated.wait())
        stop = loop.create_task(self.stopping.wait())
        await asyncio.wait({escalated, stop}, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if self.sup.escalated.is_set():
            code = 1
            self.log.error("root restart intensity exceeded; daemon exits", reason=self.sup.escalation_reason)
        elif self.task_failure is not None:
            code = 1  # a receive loop kept dying: exit loudly rather than run without it
        self.log.info("daemon stopping")
        await self.sup.shutdown()
        self.emit("daemon_shutdown", "info", {"pid": os.getpid(), "exit_code": code}, cat="daemon")
        await tasks.close()
        for task in (escalated, stop):
            task.cancel()
        return code

    async def _close(self) -> None:
        assert self.bus is not None and self.broker is not None and self.link is not None
        await self._wait_logged(self.bus.src, self.bus.seq)
        self.bus.close(linger_ms=0)
        self.control.close(linger=0)
        if self.edge is not None:
            self.edge.close()
        self.link.sock.close(linger=0)
        self.broker.stop()
        self.ctx.destroy(linger=0)
        for sock_file in self.scope.run_dir().iterdir():
            sock_file.unlink(missing_ok=True)
        self._write_pids()

    async def _wait_logged(self, src: str, seq: int, timeout: float = 3.0) -> None:
        """Wait until the log writer has our last event (so daemon_shutdown is on disk)."""
        assert self.broker is not None
        deadline = time.monotonic() + timeout
        while self.broker.last_seq(src) < seq and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def _gauges(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.sup is not None:
            for rec in self.sup.children.values():
                for child in rec.info.get("children", []):
                    state = child.get("state")
                    key = f"tree_children{{supervisor={rec.spec.id},state={state}}}"
                    out[key] = out.get(key, 0) + 1
        return out
