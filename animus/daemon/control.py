"""Control-socket methods of the root (what the CLI and transports call).

Each handler is small: read params, ask the right supervisor, shape the
reply. Names follow the original's namespaces: ``daemon/*``, ``plugin/*``,
``subject/*``, ``workflow/*``, ``supervisor/*``.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from animus.bus.eventlog import read_tail
from animus.bus.frames import param_float, param_int, param_str
from animus.daemon.config import DaemonConfig
from animus.daemon.health_rows import complete_rows
from animus.daemon.plugin_children import SUPERVISOR_OF_ROLE
from animus.errors import InvalidInput, NotFound, Unavailable
from animus.plugin_runtime.registry import Registry
from animus.supervision.root import ControlHandlers, Root

__all__ = ["ControlApi", "STATUS_SCHEMA", "control_handlers"]

STATUS_SCHEMA = "animus.daemon.status.v1"
WORKFLOW_METHODS = ("run", "list", "get", "resume", "cancel", "approve", "reject", "tick", "stats", "triggers", "fire",
                    "store", "runner", "runners")
# What a remote workflow runner may call on the tcp control socket (with the token):
# its own workflow's state, its lifecycle (started, heartbeat), and agent calls.
REMOTE_METHODS = ("workflow/store", "workflow/runner", "plugin/call")


def control_handlers(config: DaemonConfig) -> Any:
    """The root's control factory: its local and remote handler tables."""

    def build(root: Root) -> ControlHandlers:
        api = ControlApi(root, config)
        return api.handlers(), api.remote_handlers()

    return build


class ControlApi:
    def __init__(self, root: Root, config: DaemonConfig) -> None:
        self.root = root
        self.config = config

    def handlers(self) -> dict[str, Any]:
        table = {
            "daemon/status": self.status,
            "daemon/health": self.health,
            "daemon/metrics": self.metrics,
            "daemon/stop": self.stop,
            "daemon/logs": self.logs,
            "bus/sync": self.bus_sync,
            "plugin/list": self.plugin_list,
            "plugin/installed": self.plugin_installed,
            "plugin/call": self.plugin_call,
            "supervisor/stop_child": self.stop_child,
            "supervisor/restart_child": self.restart_child,
            "subject/call": self.subject_call,
        }
        for verb in WORKFLOW_METHODS:
            table[f"workflow/{verb}"] = self._workflow(verb)
        return table

    def remote_handlers(self) -> dict[str, Any]:
        table = self.handlers()
        return {method: table[method] for method in REMOTE_METHODS}

    # -- daemon --------------------------------------------------------------
    async def runners(self) -> dict[str, Any]:
        """The runner backend: ``local``, or Ray with its address, nodes and runs."""
        backend = self.config.runners.get("backend", "local")
        if backend == "local":
            return {"backend": "local"}
        try:
            result: dict[str, Any] = await self.root.ask("workflows", "runners", {}, timeout=5)
        except Exception as exc:  # status must answer while the workflows supervisor is down
            return {"backend": backend, "address": self.config.runners["ray"]["address"],
                    "connected": False, "last_error": str(exc), "nodes": [], "runs": []}
        return result

    async def status(self, params: dict[str, Any]) -> dict[str, Any]:
        root = self.root
        tree = root.sup.snapshot() if root.sup else []
        for name, why in root.skipped.items():
            tree.append({"name": name, "kind": "supervisor", "role": name, "pid": None,
                         "state": "stopped", "restarts": 0, "last_error": why, "skipped": why,
                         "children": []})
        return {
            "schema": STATUS_SCHEMA,
            "pid": os.getpid(),
            "state_root": str(root.scope.root),
            "project_root": str(root.scope.project_root),
            "uptime_seconds": round(time.time() - root.started, 3),
            "autonomous": root.settings.autonomous,
            "tree": tree,
            "runners": await self.runners(),
        }

    async def health(self, params: dict[str, Any]) -> dict[str, Any]:
        root = self.root
        names = [n for n, rec in (root.sup.children.items() if root.sup else []) if rec.spec.role != "workflow"]
        results = await asyncio.gather(
            *(root.ask(n, "health", {"timeout": param_float(params, "timeout", 3, 0.1, 60, "daemon/health")},
                       timeout=6) for n in names),
            return_exceptions=True,
        )
        rows: list[dict[str, Any]] = []
        for name, res in zip(names, results):
            if isinstance(res, BaseException):
                rows.append({"plugin": f"{name} (supervisor)", "role": name, "status": "unhealthy",
                             "last_error": str(res), "source": "supervisor"})
            else:
                rows.extend(res)
        rows = complete_rows(rows, Registry(root.scope.plugins_dir), dict(root.skipped))
        return {"schema": "animus.daemon.health.v1", "daemon": {"status": "healthy", "pid": os.getpid(),
                "uptime_seconds": round(time.time() - root.started, 3)}, "plugins": rows}

    async def metrics(self, params: dict[str, Any]) -> dict[str, Any]:
        snap = self.root.metrics.snapshot()
        if self.root.broker is not None:
            stats = await asyncio.get_running_loop().run_in_executor(None, self.root.broker.statistics)
            for key, value in stats.items():
                snap["gauges"][f"bus_proxy_{key}"] = value
        return snap

    async def stop(self, params: dict[str, Any]) -> dict[str, Any]:
        asyncio.get_running_loop().call_later(0.05, self.root.stopping.set)
        return {"stopping": True, "pid": os.getpid()}

    async def logs(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            return read_tail(self.root.scope.events_log, limit, *filters)

        limit = param_int(params, "limit", 100, 1, 100_000, "daemon/logs")
        filters = [param_str(params, key, "daemon/logs") for key in ("level", "cat", "workflow_id", "search")]
        return await asyncio.get_running_loop().run_in_executor(None, read)

    async def bus_sync(self, params: dict[str, Any]) -> dict[str, Any]:
        """Publish a marker so a new subscriber knows its subscription is live."""
        self.root.emit("stream_sync", "debug", {"nonce": params.get("nonce")}, cat="bus")
        return {"published": True}

    # -- plugins -------------------------------------------------------------
    def _supervisor_of(self, plugin: str) -> str:
        entry = Registry(self.root.scope.plugins_dir).entries().get(plugin)
        if entry is None:
            raise NotFound(f"plugin {plugin!r} is not installed", fix="animus plugin list")
        return SUPERVISOR_OF_ROLE.get(str(entry.get("role")), "")

    async def plugin_list(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        live: dict[str, dict[str, Any]] = {}
        if self.root.sup:
            for rec in self.root.sup.children.values():
                for child in rec.info.get("children", []):
                    live[child["name"]] = child
        return [{"name": n, "state": c.get("state"), "pid": c.get("pid"), "restarts": c.get("restarts"),
                 "last_error": c.get("last_error")} for n, c in sorted(live.items())]

    async def plugin_installed(self, params: dict[str, Any]) -> dict[str, Any]:
        """The installed-plugin table with live states, or one plugin's detail (``name``)."""
        from animus.plugin_runtime.listing import plugin_detail, plugin_rows

        registry = Registry(self.root.scope.plugins_dir)
        if params.get("name"):
            plugin = registry.get(str(params["name"]))
            if plugin is None:
                raise NotFound(f"plugin {params['name']!r} is not installed", fix="animus plugin list")
            return plugin_detail(plugin)
        live = {row["name"]: row for row in await self.plugin_list({})}
        return plugin_rows(registry.installed(), live)

    async def plugin_call(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params.get("name") or "")
        method = str(params.get("method") or "")
        if not name or not method:
            raise InvalidInput("plugin/call needs name and method")
        timeout = param_float(params, "timeout", 30, 0.1, 3600, "plugin/call")
        sup = self._supervisor_of(name)
        reply: dict[str, Any] = await self.root.ask(
            sup, "call", {"plugin": name, "method": method, "params": params.get("params") or {},
                          "timeout": timeout, "with_info": bool(params.get("with_info"))}, timeout=timeout + 5)
        return reply

    async def stop_child(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._child_op("stop_child", params)

    async def restart_child(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._child_op("restart_child", params)

    async def _child_op(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        child = str(params.get("child") or "")
        root = self.root
        if root.sup and child in root.sup.children:
            rec = root.sup.children[child]
            if op == "stop_child":
                await root.sup.stop_child(child)
            else:
                await root.sup.restart_child(child)
            return rec.snapshot()
        return await root.ask(self._supervisor_of(child), op, {"child": child}, timeout=40)  # type: ignore[no-any-return]

    # -- subjects ------------------------------------------------------------
    async def subject_call(self, params: dict[str, Any]) -> Any:
        """A subject verb on the plugin the routing picks; a change made is a ``subject``-category event."""
        verb = params.get("verb")
        before = await self._status_of(params) if verb == "status" else None
        result = await self._subject_call(params)
        if verb in ("create", "update", "status") and isinstance(result, dict):
            self._subject_changed(str(verb), result, before, params)
        return result

    async def _status_of(self, params: dict[str, Any]) -> str | None:
        subject_id = (params.get("params") or {}).get("id")
        try:
            found = await self._subject_call({"kind": params.get("kind"), "verb": "get", "params": {"id": subject_id}})
        except Exception:  # noqa: BLE001 - only the event's from_status is lost; the call itself goes on
            return None
        return found.get("status") if isinstance(found, dict) else None

    def _subject_changed(self, verb: str, subject: dict[str, Any], before: str | None, params: dict[str, Any]) -> None:
        """A change any client made (the CLI, an agent through MCP, HTTP) on the bus; tagged with the
        run whose agent made it when the caller names one (``workflow_id``)."""
        data: dict[str, Any] = {"subject_id": subject.get("id"), "kind": params.get("kind") or "task",
                                "origin": params.get("origin")}
        if verb == "status":
            name, data = "subject_status_changed", data | {"from_status": before, "to_status": subject.get("status")}
        elif verb == "create":
            name, data = "subject_created", data | {k: subject.get(k) for k in ("title", "status", "parent")}
        else:
            name, data = "subject_updated", data | {"fields": sorted((params.get("params") or {}).get("fields") or {})}
        try:
            if self.root.bus is not None:
                self.root.bus.publish("subject", name, "info", data, workflow_id=params.get("workflow_id") or None)
        except Exception:  # noqa: BLE001 - the change is made; a bus hiccup must not report it as failed
            pass

    async def _subject_call(self, params: dict[str, Any]) -> Any:
        from animus.plugin_runtime.subject_routing import route_kind

        kind = str(params.get("kind") or "task")
        verb = str(params.get("verb") or "")
        if not verb:
            raise InvalidInput("subject/call needs a verb")
        plugin = route_kind(self.root.scope, kind, self.root.skipped.get("subjects"))
        try:
            reply = await self.plugin_call({"name": plugin, "method": f"{kind}/{verb}",
                                            "params": params.get("params") or {},
                                            "timeout": param_float(params, "timeout", 15, 0.1, 3600,
                                                                   "subject/call")})
        except Unavailable as exc:
            raise Unavailable(f"Subject backend unavailable: {exc.message}",
                              fix=exc.fix or "animus daemon health") from None
        if "error" in reply:
            err = reply["error"]
            raise _subject_error(plugin, err)
        return reply.get("result")

    # -- workflows -----------------------------------------------------------
    def _workflow(self, verb: str) -> Any:
        async def forward(params: dict[str, Any]) -> Any:
            timeout = param_float(params, "timeout", 15, 0.1, 3600, f"workflow/{verb}")
            return await self.root.ask("workflows", verb, params, timeout=timeout)

        return forward


def _subject_error(plugin: str, err: dict[str, Any]) -> Exception:
    from animus.errors import Conflict

    data = err.get("data") or {}
    code = data.get("error_code") if isinstance(data, dict) else None
    message = str(err.get("message", "error"))
    fix = data.get("fix") if isinstance(data, dict) else None
    if code == "not_found":
        return NotFound(message, fix=fix)
    if code == "conflict":
        return Conflict(message, fix=fix)
    if code == "invalid_input" or err.get("code") in (-32602,):
        return InvalidInput(message, fix=fix)
    if err.get("code") == -32601:
        return NotFound(f"{plugin} does not serve that method: {message}")
    return Unavailable(f"{plugin}: {message}", fix=fix)

