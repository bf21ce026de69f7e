"""The root supervisor: the daemon process itself.

It owns the bus broker, the control socket, and one child supervisor process
per role, drawn as in docs/architecture.md:

    animus daemon (root)
     ├─ providers   supervisor ── provider plugins
     ├─ subjects    supervisor ── subject plugins
     ├─ triggers    supervisor ── trigger plugins
     ├─ transports  supervisor ── transport plugins
     └─ workflows   supervisor ── workflow runner subprocesses (dynamic)

Child supervisors connect to the root's ``tree`` ROUTER, acknowledge their
start (READY), and push their subtree on every change, so ``daemon status``
answers from memory even while children crash-loop. SIGTERM stops the tree
in reverse order; a SIGKILLed root takes the tree with it (every child has a
parent-death signal), and the next start reaps anything recorded in
``daemon/pids.json`` that survived.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import json
import os
import secrets
import signal
import sys
import time
from typing import Any

import psutil
import zmq
import zmq.asyncio

from animus import __version__
from animus.bus.broker import Broker
from animus.bus.codec import CodecError, pack, unpack
from animus.bus.metrics import Metrics
from animus.bus.publisher import Publisher
from animus.bus.rpc import serve_request
from animus.config import DaemonConfig, load_daemon_config, truthy
from animus.errors import Conflict, Unavailable
from animus.logs import configure, get_logger
from animus.state.scope import Scope
from animus.process import handle as process
from animus.supervision.spec import ChildSpec, ChildType, Restart, SupervisorFlags, Timeout
from animus.supervision.supervisor import ChildState, Supervisor
from animus.state.files import atomic_write

__all__ = ["Root", "ROLES", "run_daemon"]

# (supervisor name, plugin role, kill-switch env var)
ROLES = (
    ("providers", "provider", "ANIMUS_DAEMON_DISABLE_PROVIDER_PLUGINS"),
    ("subjects", "subject", "ANIMUS_DAEMON_DISABLE_SUBJECT_PLUGINS"),
    ("workflows", None, None),  # before triggers: a trigger's first event needs it
    ("triggers", "trigger", "ANIMUS_DAEMON_DISABLE_TRIGGERS"),
    ("transports", "transport", None),
)
# child supervisors start at once, but each after those it needs up: runs (recovered ones at
# once) call providers and subjects; a trigger's first event needs workflows
START_AFTER = {"workflows": ("providers", "subjects"), "triggers": ("workflows",)}


class Root:
    def __init__(self, scope: Scope, options: dict[str, Any]) -> None:
        self.scope = scope
        self.options = options
        self.log = get_logger()
        self.config: DaemonConfig = load_daemon_config(scope.project_root)
        self.metrics = Metrics()
        self.started = time.time()
        self.ctx = zmq.Context()
        self.actx = zmq.asyncio.Context.shadow(self.ctx.underlying)
        self.stopping = asyncio.Event()
        self.disabled: dict[str, set[str]] = {}  # supervisor -> disabled children
        self.skipped: dict[str, str] = {}  # supervisor -> why it is not running
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self.sup: Supervisor | None = None
        self.broker: Broker | None = None
        self.bus: Publisher | None = None
        self.api: Any = None
        self.runner_token: str | None = None  # remote runners' token for the tcp control socket
        self.control_tcp: zmq.asyncio.Socket | None = None
        self.remote_endpoints: dict[str, str] = {}
        if self.config.runners.get("backend") == "ray":
            from animus.workflow.remote.ray_config import require_ray

            require_ray()

    # -- endpoints -----------------------------------------------------------
    def endpoint(self, name: str) -> str:
        return self.scope.endpoint(name)

    def emit(self, kind: str, level: str, data: dict[str, Any], cat: str = "supervisor") -> None:
        if self.bus is not None:
            self.bus.publish(cat, kind, level, {"supervisor": "root", **data})

    # -- child supervisor specs ---------------------------------------------
    def child_config(self, name: str, role: str | None) -> dict[str, Any]:
        from animus.plugin_runtime.plugin_specs import plugin_children

        cfg: dict[str, Any] = {
            "name": name, "role": role or name,
            "tree_endpoint": self.endpoint("tree"),
            "plugin_endpoint": self.endpoint(f"plugins.{name}"),
            "bus_endpoint": self.endpoint("bus.in"),
            "bus_out_endpoint": self.endpoint("bus.out"),
            "control_endpoint": self.endpoint("control"),
            "project_root": str(self.scope.project_root),
            "state_root": str(self.scope.root),
            "intensity": self.config.intensity, "period": self.config.period,
            "ready_timeout": self.config.ready_timeout,
            "disabled": sorted(self.disabled.get(name, ())),
            "children": [],
        }
        if role is None:
            cfg["service"] = "animus.workflow.service:WorkflowService"
            cfg["preload"] = ["animus.workflow.runner", "animus.workflow.agent_phase"]
            cfg["strategy"] = "simple_one_for_one"
            cfg["restart"] = self.config.restart.to_dict()
            cfg["service_config"] = {
                "state_root": cfg["state_root"], "project_root": cfg["project_root"],
                "bus_endpoint": cfg["bus_endpoint"], "control_endpoint": cfg["control_endpoint"],
                "pool_size": self.config.pool_size, "interval_secs": self.config.interval_secs,
                "drain_timeout": self.config.drain_timeout, "scheduler_kinds": list(self.config.scheduler_kinds),
                "autonomous": bool(self.options.get("autonomous")), "runners": self.config.runners,
                "remote": dict(self.remote_endpoints, token=self.runner_token) if self.runner_token else {},
            }
        else:
            cfg["children"] = plugin_children(self.scope, self.config, role, cfg)
        return cfg

    def _spawn_child_supervisor(self, spec: ChildSpec) -> process.ChildProcess:
        name = spec.id
        role = dict((n, r) for n, r, _ in ROLES)[name]
        cfg = self.child_config(name, role)
        path = self.scope.state_dir / "supervisors" / f"{name}.json"
        atomic_write(path, json.dumps(cfg, indent=1).encode(), 0o600)
        env = dict(os.environ)
        return process.spawn([sys.executable, "-m", "animus.supervision.child", str(path)], env,
                             self.scope.project_root)

    def build_tree(self) -> Supervisor:
        specs = []
        for name, role, switch in ROLES:
            if switch and truthy(os.environ.get(switch)):
                self.skipped[name] = f"skipped: {switch} is set"
                continue
            specs.append(ChildSpec(id=name, start={"module": "animus.supervision.child"},
                                   restart=Restart.PERMANENT,
                                   shutdown=Timeout(self.config.drain_timeout + 10 if role is None else 30.0),
                                   type=ChildType.SUPERVISOR, role=role or "workflow",
                                   backoff=self.config.restart))
        flags = SupervisorFlags(intensity=self.config.intensity, period=self.config.period)
        sup = Supervisor("root", flags, specs, self._spawn_child_supervisor, self.emit,
                         ready_timeout=max(30.0, self.config.ready_timeout * 3))
        sup.on_change = self._record_pids
        sup.on_exit_hook = self._child_supervisor_exited
        return sup

    def _child_supervisor_exited(self, name: str, reason: Any) -> None:
        """A child supervisor died: its workers died with it (parent-death signal);
        kill what they left in their process groups."""
        if self.sup is None or name not in self.sup.children:
            return
        process.kill_groups(self.sup.children[name].info.get("worker_create_times", {}))

    # -- tree socket ---------------------------------------------------------
    async def serve_tree(self) -> None:
        while True:
            ident, raw = await self.tree.recv_multipart()
            try:
                msg = unpack(raw)
            except CodecError:
                self.metrics.inc("tree_frames_malformed_total")
                continue
            if not isinstance(msg, dict) or self.sup is None:
                continue
            name = ident.decode(errors="replace")
            rec = self.sup.children.get(name)
            kind = msg.get("type")
            if kind == "ready" and rec is not None:
                rec.info["children"] = msg.get("children", [])
                rec.info["worker_create_times"] = _create_times(rec.info["children"])
                self.sup.child_ready(name, int(msg.get("pid", 0)) or None)
                self._record_pids()
            elif kind == "tree" and rec is not None:
                rec.info["children"] = msg.get("children", [])
                rec.info["worker_create_times"] = _create_times(rec.info["children"])
                for child in rec.info["children"]:
                    if child.get("state") == "disabled":
                        self.disabled.setdefault(name, set()).add(child["name"])
                self._record_pids()
            elif kind == "reply":
                fut = self.pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
                if fut is not None and not fut.done():
                    fut.set_result(msg)

    async def ask(self, supervisor: str, method: str, params: dict[str, Any], timeout: float = 10.0) -> Any:
        """Send a request to a child supervisor and wait for its reply."""
        from animus.errors import from_dict

        if self.sup is None or supervisor not in self.sup.children:
            reason = self.skipped.get(supervisor, "not part of this daemon")
            raise Unavailable(f"{supervisor} supervisor is {reason}")
        rec = self.sup.children[supervisor]
        if rec.state is not ChildState.RUNNING:
            raise Unavailable(f"{supervisor} supervisor is {rec.state.value}",
                              fix="animus daemon status; animus daemon health")
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[req_id] = fut
        try:
            await self.tree.send_multipart([supervisor.encode(), pack(
                {"type": "request", "id": req_id, "method": method, "params": params})])
            reply = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Unavailable(f"{supervisor} supervisor did not answer {method} within {timeout:g}s") from None
        except zmq.ZMQError as exc:
            raise Unavailable(f"{supervisor} supervisor is not connected: {exc}") from None
        finally:
            self.pending.pop(req_id, None)
        if "error" in reply:
            raise from_dict(reply["error"])
        return reply.get("result")

    # -- control socket ------------------------------------------------------
    async def serve_control(self, sock: zmq.asyncio.Socket | None = None, remote: bool = False) -> None:
        """Answer control requests on the ipc socket, or (``remote``) on the
        tcp one: only the methods remote runners need, each with the token."""
        from animus.supervision.control import ControlApi

        if self.api is None:
            self.api = ControlApi(self)
        handlers = self.api.remote_handlers() if remote else self.api.handlers()
        token = self.runner_token if remote else None
        sock = sock or self.control

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
            asyncio.get_running_loop().create_task(answer(frames[0], frames[1]))

    def bind_remote_runners(self) -> None:
        """For the ray backend: the bus input and a token-guarded control socket
        on tcp:// at ``runners.ray.daemon_address`` (ephemeral ports, recorded
        in the workflows supervisor's config, which hands them to its runners)."""
        assert self.broker is not None
        address = self.config.runners["ray"]["daemon_address"]
        self.runner_token = secrets.token_urlsafe(32)
        self.control_tcp = self.actx.socket(zmq.ROUTER)
        self.control_tcp.setsockopt(zmq.LINGER, 0)
        self.control_tcp.setsockopt(zmq.MAXMSGSIZE, 16 * 1024 * 1024)  # read before the token is checked
        self.control_tcp.bind(f"tcp://{address}:*")
        self.remote_endpoints = {
            "bus_endpoint": self.broker.bound_in[-1],
            "control_endpoint": self.control_tcp.getsockopt_string(zmq.LAST_ENDPOINT),
        }

    def _malformed_control(self, reason: str) -> None:
        self.metrics.inc("control_requests_malformed_total")

    # -- pid records ---------------------------------------------------------
    def all_pids(self) -> dict[int, float]:
        pids: dict[int, float] = {}
        if self.sup is None:
            return pids
        pids.update(self.sup.live_pids())
        for rec in self.sup.children.values():
            for child in rec.info.get("children", []):
                if child.get("pid"):
                    pid = int(child["pid"])
                    try:
                        pids[pid] = psutil.Process(pid).create_time()
                    except psutil.Error:
                        continue
        return pids

    def _record_pids(self) -> None:
        data = {"root": os.getpid(), "pids": {str(k): v for k, v in self.all_pids().items()}}
        try:
            atomic_write(self.scope.root / "daemon" / "pids.json", json.dumps(data).encode(), 0o600)
        except OSError:
            pass

    # -- lifecycle -----------------------------------------------------------
    async def run(self, ready_fd: int | None) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        run_dir = self.scope.run_dir()
        for stale in run_dir.iterdir():
            stale.unlink(missing_ok=True)
        remote = self.config.runners.get("backend") == "ray"
        runner_bus = [f"tcp://{self.config.runners['ray']['daemon_address']}:*"] if remote else []
        self.broker = Broker(self.ctx, [self.endpoint("bus.in"), *self.config.bus_tcp, *runner_bus],
                             [self.endpoint("bus.out")], self.scope.events_log, self.metrics)
        self.broker.start()
        if remote:
            self.bind_remote_runners()
        self.bus = Publisher(self.endpoint("bus.in"), f"daemon/root:{os.getpid()}", self.ctx)
        self.bus.wait_ready(5)
        self.control = self.actx.socket(zmq.ROUTER)
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.bind(self.endpoint("control"))
        self.tree = self.actx.socket(zmq.ROUTER)
        self.tree.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.tree.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.tree.setsockopt(zmq.LINGER, 0)
        self.tree.bind(self.endpoint("tree"))
        self.metrics.gauge_sources["root"] = self._gauges
        self.emit("daemon_startup", "info", {
            "pid": os.getpid(), "version": __version__, "state_root": str(self.scope.root),
            "project_root": str(self.scope.project_root), "autonomous": bool(self.options.get("autonomous")),
            "bus_in": self.broker.bound_in, "log_repaired_bytes": self.broker.log.repaired_bytes,
        }, cat="daemon")
        self.log.info("daemon starting", state_root=str(self.scope.root), pid=os.getpid())
        tasks = [loop.create_task(self.serve_tree()), loop.create_task(self.serve_control())]
        if self.control_tcp is not None:
            tasks.append(loop.create_task(self.serve_control(self.control_tcp, remote=True)))
        self.sup = self.build_tree()
        await self.sup.start(START_AFTER)
        self._record_pids()
        self.emit("daemon_ready", "info", {"tree": [c["name"] for c in self.sup.snapshot()]}, cat="daemon")
        self.log.info("daemon ready", children=[c["name"] for c in self.sup.snapshot()])
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
        self.log.info("daemon stopping")
        await self.sup.shutdown()
        self.emit("daemon_shutdown", "info", {"pid": os.getpid(), "exit_code": code}, cat="daemon")
        for task in (*tasks, escalated, stop):
            task.cancel()
        await self._wait_logged(self.bus.src, self.bus.seq)
        self.bus.close(linger_ms=0)
        self.control.close(linger=0)
        if self.control_tcp is not None:
            self.control_tcp.close(linger=0)
        self.tree.close(linger=0)
        self.broker.stop()
        self.ctx.destroy(linger=0)
        for sock_file in run_dir.iterdir():
            sock_file.unlink(missing_ok=True)
        self._record_pids()
        self.log.info("daemon stopped", exit_code=code)
        return code

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


# -- process entry ------------------------------------------------------------
def _create_times(children: list[dict[str, Any]]) -> dict[int, float]:
    out = {}
    for child in children:
        if child.get("pid"):
            try:
                out[int(child["pid"])] = psutil.Process(int(child["pid"])).create_time()
            except psutil.Error:
                continue
    return out


def _reap_leftovers(scope: Scope) -> int:
    """Kill processes of a previous crashed run (matching pid *and* create time)."""
    path = scope.root / "daemon" / "pids.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0
    victims = {int(pid): float(ct) for pid, ct in data.get("pids", {}).items()}
    alive = []
    for pid, ct in victims.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - ct) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            continue
    process.kill_tree(set(alive), victims)
    # and whatever the dead tree's workers started in their process groups
    return len(alive) + process.kill_groups(victims)


def acquire_lock(scope: Scope) -> int:
    """Hold ``daemon.lock`` for the life of the daemon: one daemon per scope."""
    lock_dir = scope.root / "daemon"
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / "daemon.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = read_pid(scope)
        raise Conflict(f"daemon already running (pid {pid})" if pid else "daemon already running",
                       fix="animus daemon status; stop it with animus daemon stop") from None
    return fd


def read_pid(scope: Scope) -> int | None:
    try:
        data = json.loads(scope.pidfile.read_text())
        return int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_daemon(scope: Scope, options: dict[str, Any], ready_fd: int | None = None) -> int:
    """Run the daemon in this process until it is told to stop."""
    configure("daemon")
    scope.ensure()
    lock_fd = acquire_lock(scope)
    reaped = _reap_leftovers(scope)
    create_time = psutil.Process().create_time()
    atomic_write(scope.pidfile, json.dumps({"pid": os.getpid(), "create_time": create_time,
                                            "state_root": str(scope.root)}).encode(), 0o600)
    log = get_logger()
    if reaped:
        log.warning("reaped processes left by a previous crashed daemon", count=reaped)
    try:
        root = Root(scope, options)
        from animus.workflow.compile import compile_project

        compile_project(scope)
        return asyncio.run(root.run(ready_fd))
    finally:
        scope.pidfile.unlink(missing_ok=True)
        os.close(lock_fd)
