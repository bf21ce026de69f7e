"""A child supervisor process: one per role (providers, subjects, …, workflows).

It binds ``plugins.<role>``, starts its workers in order under the restart
policy, reports its subtree to the root on every change, and answers the
root's requests (plugin calls, health, operator stop/start). Its workers die
with it: each has a parent-death signal, and on SIGTERM it stops them in
reverse order. If its restart intensity is exceeded it exits, and the root
decides (escalation).

Started by the root as ``python -m animus.supervision.child <config.json>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from animus.bus.codec import CodecError, pack, unpack
from animus.bus.publisher import Publisher
from animus.bus.rpc import error_payload
from animus.errors import InvalidInput, NotFound, Unavailable
from animus.plugin_runtime.host import PluginCallError, PluginHost
from animus.process import handle as process
from animus.process.pdeathsig import Owner
from animus.supervision.child_config import ChildConfig
from animus.supervision.exit_reason import ExitReason
from animus.supervision.launcher import Launcher, preload_modules
from animus.supervision.service import ChildService, DynamicChildren, ServiceContext, ServiceFactory, load_service
from animus.supervision.spec import Strategy
from animus.supervision.supervisor import ChildState, Supervisor
from animus.tasks import Nursery

__all__ = ["ChildSupervisor", "main", "FIRE_PATIENCE_SECS"]

FIRE_PATIENCE_SECS = 30.0  # how long a trigger's event waits for the workflows supervisor to run


class ChildSupervisor:
    def __init__(self, config: ChildConfig, service: ServiceFactory | None = None,
                 owner: Owner | None = None) -> None:
        # first, while this process has no thread and no ZeroMQ context: the zygote is forked from us
        # (or, lean, exec'd with only what its workers import)
        self.launcher = Launcher(preload_modules([c["argv"] for c in config.children], config.preload),
                                 fork_self=not config.lean_zygote, lean=config.lean_zygote)
        self.owner = owner
        self.config = config
        self.name = config.name
        self.role = config.role
        self.ctx = zmq.asyncio.Context()
        self.bus = Publisher(config.bus_endpoint, f"supervisor/{self.name}:{os.getpid()}")
        self.child_roles = config.child_roles()
        self.sup = Supervisor(self.name, config.flags, config.specs(), self.launcher, self.emit,
                              ready_timeout=config.ready_timeout, disabled=set(config.disabled))
        self.sup.on_change = self._changed
        self.sup.on_exit_hook = self._child_exited
        self.dynamic = DynamicChildren(self.sup)
        self.host = PluginHost(self.ctx, config.plugin_endpoint, self.sup.child_ready,
                               self.sup.child_failed, self.emit, configs=config.plugin_configs(),
                               on_notification=self.on_notification)
        self.tree = self.ctx.socket(zmq.DEALER)
        self.tree.setsockopt(zmq.IDENTITY, self.name.encode())
        self.tree.setsockopt(zmq.LINGER, 1000)
        self.tree.connect(config.tree_endpoint)
        self.handlers: dict[str, Any] = {
            "call": self.call, "health": self.health, "stop_child": self.stop_child,
            "restart_child": self.restart_child, "snapshot": self.snapshot,
        }
        self.tasks = Nursery()
        self.sup.spawn = self.tasks.spawn
        self._change_pending = False
        self._control: Any = None
        self.stopping = asyncio.Event()
        self.go = asyncio.Event()  # the root's word that what we need is up (config.hold)
        self.service: ChildService | None = None
        if service is not None:
            self.service = service(ServiceContext(
                name=self.name, config=config.service_config, zmq=self.ctx, emit=self.emit,
                publish=self.bus.publish, children=self.dynamic, spawn=self.tasks.spawn, changed=self._changed))
            self.handlers.update(self.service.handlers())

    def _child_exited(self, child: str, reason: ExitReason) -> None:
        self.host.forget(child)
        self.dynamic.exited(child, reason)

    # -- events --------------------------------------------------------------
    def emit(self, kind: str, level: str, data: dict[str, Any]) -> None:
        data = {"supervisor": self.name, **data}
        cat = "plugin" if kind.startswith("plugin_") else "supervisor"
        try:
            self.bus.publish(cat, kind, level, data)
        except Exception:  # the bus is the root's; if it is gone we are going too
            pass

    def on_notification(self, child: str, method: str, params: dict[str, Any]) -> None:
        if method == "trigger/event":
            self.tasks.spawn(self._route_trigger(child, params))
            return
        self.emit("plugin_notification", "debug", {"child": child, "method": method})

    async def _route_trigger(self, plugin: str, params: dict[str, Any]) -> None:
        """Hand a trigger plugin's event to the workflows supervisor; ack the outcome."""
        if self._control is None:
            from animus.bus.rpc import AsyncControlClient

            self._control = AsyncControlClient(self.ctx, self.config.control_endpoint)
        event_id = params.get("event_id")
        try:
            result = await self._fire({
                "trigger_id": params.get("trigger_id"), "payload": params.get("payload") or {},
                "source": plugin})
            ack = {"event_id": event_id, "status": "dispatched", "workflow_id": result.get("workflow_id")}
        except Exception as exc:
            status = "unmatched" if getattr(exc, "code", "") == "not_found" else "failed"
            ack = {"event_id": event_id, "status": status, "error": str(exc)}
        try:
            await self.host.notify(plugin, "trigger/ack", ack)
        except Exception:
            pass  # the plugin went away; the event is in the log either way

    async def _fire(self, params: dict[str, Any], patience: float = FIRE_PATIENCE_SECS) -> Any:
        """``workflow/fire``, waiting (up to ``patience``) while the workflows supervisor is not
        running yet (the daemon's start, a restart): such a request was never sent, so asking
        again cannot fire twice. Triggers therefore start with everything else."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + patience, 0.02
        while True:
            try:
                return await self._control.call("workflow/fire", params, timeout=15)
            except Exception as exc:
                details = getattr(exc, "details", None)
                not_sent = isinstance(details, dict) and details.get("not_sent")
                if not not_sent or loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def tree_snapshot(self) -> list[dict[str, Any]]:
        """The children the root shows under this supervisor, and the service's own rows."""
        return self.sup.snapshot() + (self.service.extra_children() if self.service is not None else [])

    def _changed(self) -> None:
        if self._change_pending:
            return
        self._change_pending = True

        async def push() -> None:
            await asyncio.sleep(0)
            self._change_pending = False
            await self.tree.send(pack({"type": "tree", "children": self.tree_snapshot()}))

        if self.tasks.open:
            self.tasks.spawn(push())

    # -- root requests -------------------------------------------------------
    def _running(self, plugin: str) -> None:
        rec = self.sup.children.get(plugin)
        if rec is None:
            raise NotFound(f"no plugin named {plugin!r} under the {self.name} supervisor",
                           fix="animus plugin list")
        if rec.state is ChildState.DISABLED:
            raise Unavailable(f"plugin {plugin} is disabled after {rec.restarts} restarts "
                              f"(last error: {rec.last_error or 'unknown'})",
                              fix="fix the cause, then animus daemon stop && animus daemon start")
        if plugin not in self.host.ready:
            raise Unavailable(f"plugin {plugin} is {rec.state.value}, not ready",
                              fix="animus daemon health")

    async def call(self, params: dict[str, Any]) -> Any:
        plugin = str(params.get("plugin", ""))
        self._running(plugin)
        try:
            value = await self.host.request(plugin, str(params["method"]), params.get("params") or {},
                                            float(params.get("timeout", 30)))
        except PluginCallError as exc:
            return {"error": {"code": exc.code, "message": exc.message, "data": exc.data}}
        if params.get("with_info"):  # plugin info: what the plugin said at initialize
            return {"result": value, "plugin_info": self.sup.children[plugin].info.get("plugin_info")}
        return {"result": value}

    async def health(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        async def one(child_id: str) -> dict[str, Any]:
            rec = self.sup.children[child_id]
            row = {"plugin": child_id, "role": self.child_roles.get(child_id, self.role), "state": rec.state.value,
                   "restarts": rec.restarts, "pid": rec.proc.pid if rec.proc else None,
                   "last_error": rec.last_error or None}
            if rec.state is ChildState.DISABLED:
                return row | {"status": "unhealthy", "source": "supervisor"}
            if child_id not in self.host.ready:
                return row | {"status": "unhealthy" if rec.state is not ChildState.STOPPED else "stopped",
                              "source": "supervisor"}
            try:
                health = await self.host.health(child_id, float(params.get("timeout", 3)))
            except (Unavailable, PluginCallError) as exc:
                return row | {"status": "unhealthy", "last_error": str(exc), "source": "live"}
            # answered: the plugin itself judged its health (a garbage reply is not an answer), just now
            # (live) or in its last pong (heartbeat, at most 1.5 ping intervals ago: age_ms)
            return row | health | {"source": "heartbeat" if "age_ms" in health else "live",
                                   "answered": "garbage" not in health,
                                   "last_error": health.get("last_error") or row["last_error"]}

        return list(await asyncio.gather(*(one(c) for c in self.sup.policy.order)))

    async def stop_child(self, params: dict[str, Any]) -> dict[str, Any]:
        self._exists(params["child"])
        return (await self.sup.stop_child(params["child"])).snapshot()

    async def restart_child(self, params: dict[str, Any]) -> dict[str, Any]:
        self._exists(params["child"])
        try:
            return (await self.sup.restart_child(params["child"])).snapshot()
        except ValueError as exc:
            raise InvalidInput(str(exc), fix="animus daemon stop && animus daemon start") from None

    def _exists(self, child: str) -> None:
        if child not in self.sup.children:
            raise NotFound(f"no child named {child!r} under {self.name}")

    async def snapshot(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.sup.snapshot()

    async def _serve_root(self) -> None:
        while True:
            raw = await self.tree.recv()
            try:
                msg = unpack(raw)
            except CodecError:
                continue
            if isinstance(msg, dict) and msg.get("type") == "go":
                self.go.set()
            if not isinstance(msg, dict) or msg.get("type") != "request":
                continue
            self.tasks.spawn(self._answer(msg))

    async def _answer(self, msg: dict[str, Any]) -> None:
        handler = self.handlers.get(str(msg.get("method")))
        params = msg.get("params") or {}
        try:
            if handler is None:
                raise InvalidInput(f"{self.name} does not handle {msg.get('method')!r}")
            if not isinstance(params, dict):
                raise InvalidInput(f"{msg.get('method')}: params must be a map")
            try:
                result = await handler(params)
            except (TypeError, ValueError, KeyError) as exc:  # params of the wrong type: the caller's input
                raise InvalidInput(f"{msg.get('method')}: invalid params ({type(exc).__name__}: {exc})"[:300]) from None
            reply = {"type": "reply", "id": msg.get("id"), "result": result}
        except Exception as exc:
            reply = {"type": "reply", "id": msg.get("id"), "error": error_payload(exc)}
        await self.tree.send(pack(reply))

    # -- lifecycle -----------------------------------------------------------
    async def run(self) -> int:
        """Start, serve until told to stop (or escalation), stop in order.

        Every task runs in one nursery: a task that fails ends the process
        loudly, its workers killed, and the root restarts it."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        if self.owner is not None and self.owner.fileno is not None:
            owner_fd = self.owner.fileno

            def owner_gone() -> None:  # the root died: as the SIGTERM of a parent-death signal would say
                loop.remove_reader(owner_fd)
                self.stopping.set()

            loop.add_reader(owner_fd, owner_gone)
        self.bus.wait_ready(5)
        self.host.start()
        try:
            async with self.tasks:
                code = await self._serve()
        except BaseException:
            self._kill_everything()
            raise
        finally:
            self.host.close()
            self.launcher.close()
            self.tree.close(linger=200)
            self.bus.close(linger_ms=1000)
        return code

    async def _serve(self) -> int:
        self.tasks.spawn(self._serve_root(), name="serve_root")
        self.tasks.spawn(self._watch_parent(), name="watch_parent")
        stop = self.tasks.spawn(self.stopping.wait())
        if self.config.hold:  # everything but our children and service is ready: wait for the word
            await self.tree.send(pack({"type": "held", "pid": os.getpid()}))
            await asyncio.wait({self.tasks.spawn(self.go.wait()), stop}, return_when=asyncio.FIRST_COMPLETED)
        if not self.stopping.is_set():
            independent = self.sup.flags.strategy is Strategy.ONE_FOR_ONE  # no child needs another up first
            await self.sup.start({} if independent else None)
            if self.service is not None:
                await self.service.start()
            await self.tree.send(pack({"type": "ready", "pid": os.getpid(), "children": self.tree_snapshot()}))
        escalated = self.tasks.spawn(self.sup.escalated.wait())
        await asyncio.wait({escalated, stop}, return_when=asyncio.FIRST_COMPLETED)
        code = 1 if self.sup.escalated.is_set() else 0
        if self._orphaned():
            self._kill_everything()  # the root is gone: no time for a graceful stop
            return 3
        if self.service is not None:
            await self.service.stop()
        await self.sup.shutdown()
        self.tasks.cancel_all()
        return code

    def _orphaned(self) -> bool:
        return self.owner is not None and self.owner.gone()

    def _kill_everything(self) -> None:
        """SIGKILL every worker's process group, and what the service owns: nothing outlives its owner."""
        leaders = {}
        for rec in self.sup.children.values():
            if rec.proc is not None:
                leaders[rec.proc.pid] = rec.proc.create_time
        process.kill_groups(leaders)
        if self.service is not None:
            self.service.abandon()

    async def _watch_parent(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self._orphaned():
                self._kill_everything()
                os._exit(3)


def main() -> None:
    # SIGTERM (not SIGKILL) when the root dies, so that we can kill our workers'
    # process groups on the way out; see ChildSupervisor._kill_everything. Forked
    # by the root's zygote, we watch the root by pidfd instead (``Owner``).
    owner = Owner(signal.SIGTERM)
    if owner.gone():
        sys.exit(3)
    config = ChildConfig.from_dict(json.loads(Path(sys.argv[1]).read_text()))
    service = load_service(config.service) if config.service else None
    sys.exit(asyncio.run(ChildSupervisor(config, service, owner).run()))


if __name__ == "__main__":
    main()
