"""The Python plugin SDK: a plugin is a class with handler methods.

    class Echo(Plugin):
        name, role, version = "echo", "provider", "0.1.0"

        @method("agent/run")
        def run(self, params, ctx):
            return {"verdict": "advance", "summary": params["prompt"]}

    if __name__ == "__main__":
        run_plugin(Echo)

The SDK does the handshake, answers ``$/ping`` and ``health/check`` while
handlers run (sync handlers run in threads), honours ``$/cancelRequest``,
stops cleanly on SIGTERM or ``shutdown``/``exit``, and exits on its own
when its host disappears (parent-death signal plus a host-silence timeout).
``<plugin> --manifest`` prints the manifest as JSON.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from animus.bus.codec import CodecError, pack, unpack
from animus.plugin_runtime import protocol as p

__all__ = ["Plugin", "method", "run_plugin", "RequestContext", "RpcError"]

RpcError = p.RpcError


def host_silence_secs() -> float:
    """Read when the plugin runs, not at import: a zygote imports us before the env is set."""
    return float(os.environ.get("ANIMUS_HOST_SILENCE_SECS", "15"))
SHUTDOWN_DRAIN_SECS = 3.0  # under the host's 5 s shutdown timeout


def method(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a method as the handler of a protocol method."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__animus_method__ = name  # type: ignore[attr-defined]
        return fn

    return mark


@dataclass
class RequestContext:
    request_id: Any
    method: str
    cancelled: threading.Event = field(default_factory=threading.Event)
    plugin: Plugin | None = None

    def notify(self, method_name: str, params: dict[str, Any]) -> None:
        if self.plugin is not None:
            self.plugin.notify(method_name, params)


class Plugin:
    name = ""
    role = ""
    version = "0.1.0"
    description = ""
    subject_kinds: list[str] = []
    env_required: list[dict[str, Any]] = []
    handle_sigterm = True  # a test probe may turn this off to play a stuck worker
    # health() runs in a handler thread, since it may wait on I/O (a subject backend's list); a plugin
    # whose health() only reads its own state says so, and it is answered on the event loop (a thread
    # hop less for each of a `daemon health` call's 16 answers)
    health_blocks = True

    def __init__(self) -> None:
        self.config: dict[str, Any] = dict(json.loads(os.environ.get(p.ENV_CONFIG) or "{}"))
        self.started = time.monotonic()
        self.last_error: str | None = None
        self.last_error_at = 0.0  # a handler error degrades health for a minute, not for ever
        self.state_root = os.environ.get(p.ENV_STATE, "")
        self.project_root = os.environ.get(p.ENV_PROJECT, os.getcwd())
        self._send: Callable[[dict[str, Any]], None] | None = None
        self._publisher: Any = None
        self._publisher_lock = threading.Lock()  # handlers in threads may publish first at once

    # -- overridable hooks ---------------------------------------------------
    def on_initialize(self, params: dict[str, Any]) -> None:
        """Called once with the host's initialize params (config included)."""

    def health(self) -> dict[str, Any]:
        recent = self.last_error is not None and time.monotonic() - self.last_error_at < 60
        return {"status": "degraded" if recent else "healthy", "last_error": self.last_error}

    def on_shutdown(self) -> None:
        """Release resources; called once before the process exits."""

    def on_notification(self, method_name: str, params: dict[str, Any]) -> None:
        """A notification from the host (e.g. ``trigger/ack``); runs in a worker thread."""

    def route(self, method_name: str) -> Callable[..., Any] | None:
        """Handlers for methods named at run time (e.g. ``<kind>/list``); None if unknown."""
        return None

    @classmethod
    def extra_methods(cls) -> list[str]:
        """Method names served by ``route``, for the manifest's capabilities."""
        return []

    # -- services ------------------------------------------------------------
    def notify(self, method_name: str, params: dict[str, Any]) -> None:
        if self._send is not None:
            self._send(p.notification(method_name, params))

    def publish(self, cat: str, kind: str, level: str = "info", **fields: Any) -> None:
        """Publish an event on the daemon's bus (no-op when run one-shot)."""
        endpoint = os.environ.get(p.ENV_BUS)
        if not endpoint:
            return
        with self._publisher_lock:
            if self._publisher is None:
                from animus.bus.publisher import Publisher

                self._publisher = Publisher(endpoint, f"plugin/{self.name}:{os.getpid()}")
        data = fields.pop("data", None)
        self._publisher.publish(cat, kind, level, data, **fields)

    @classmethod
    def handlers(cls) -> dict[str, str]:
        out: dict[str, str] = {}
        for attr, fn in inspect.getmembers(cls, predicate=inspect.isfunction):
            name = getattr(fn, "__animus_method__", None)
            if name:
                out[name] = attr
        return out

    @classmethod
    def manifest(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "role": cls.role,
            "plugin_kind": cls.role,
            "version": cls.version,
            "description": cls.description,
            "protocol_version": p.PROTOCOL_VERSION,
            "capabilities": sorted(cls.handlers()) + cls.extra_methods(),
            "env_required": cls.env_required,
            "kinds": list(cls.subject_kinds),
        }

    def initialize_result(self) -> dict[str, Any]:
        return {
            "protocol_version": p.PROTOCOL_VERSION,
            "plugin_info": {"name": self.name, "version": self.version,
                            "plugin_kind": self.role, "description": self.description},
            "capabilities": {"methods": sorted(self.handlers()) + self.extra_methods(), "streaming": True,
                             "cancellation": True, "subject_kinds": list(self.subject_kinds)},
        }


class _Runtime:
    """Runs one plugin instance against its host."""

    def __init__(self, plugin: Plugin, endpoint: str, ident: str) -> None:
        self.plugin = plugin
        self.endpoint = endpoint
        self.ident = ident
        self.ctx = zmq.asyncio.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, f"{ident}:{os.getpid()}".encode())
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.initialized = False
        self.stopping = asyncio.Event()
        self.inflight: dict[Any, RequestContext] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="handler")
        self.last_heard = time.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.handlers = plugin.handlers()

    def send(self, msg: dict[str, Any]) -> None:
        """Thread-safe send (handlers in threads notify through here)."""
        loop = self.loop
        if loop is None:
            return
        data = pack(msg)

        async def send_now() -> None:  # a coroutine, built and awaited on the loop
            await self.sock.send(data)

        if threading.current_thread() is threading.main_thread():
            task = loop.create_task(send_now())
            self.tasks.add(task)  # keep a reference until it is sent
            task.add_done_callback(self.tasks.discard)
        else:
            asyncio.run_coroutine_threadsafe(send_now(), loop)

    async def serve(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.plugin._send = self.send
        if self.plugin.handle_sigterm:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.loop.add_signal_handler(sig, self.stopping.set)
        self.sock.connect(self.endpoint)
        await self.sock.send(pack(p.notification("$/ready", {"pid": os.getpid(), "name": self.plugin.name})))
        reader = self.loop.create_task(self._read())
        watchdog = self.loop.create_task(self._watch_host())
        await self.stopping.wait()
        reader.cancel()
        watchdog.cancel()
        for ctx in self.inflight.values():
            ctx.cancelled.set()
        if self.tasks:  # let cancelled handlers reply and publish before the sockets close
            await asyncio.wait(set(self.tasks), timeout=SHUTDOWN_DRAIN_SECS)
        try:
            self.plugin.on_shutdown()
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.sock.close(linger=500)
            # replies still queued leave only while the context terminates: a process
            # that exits without it may drop the answers its handlers just sent
            self.ctx.term()
            if self.plugin._publisher is not None:
                self.plugin._publisher.close(linger_ms=1000)
        return 0

    async def _watch_host(self) -> None:
        parent = int(os.environ.get("ANIMUS_PARENT_PID", "0") or 0)
        silence = host_silence_secs()
        while True:
            await asyncio.sleep(0.5)
            if parent and os.getppid() != parent:
                self.stopping.set()  # host process is gone
                return
            if time.monotonic() - self.last_heard > silence:
                self.stopping.set()  # host stopped pinging us
                return

    async def _read(self) -> None:
        while True:
            raw = await self.sock.recv()
            self.last_heard = time.monotonic()
            try:
                msg = unpack(raw)
            except CodecError as exc:
                await self.sock.send(pack(p.error(None, p.PARSE_ERROR, exc.reason)))
                continue
            if not isinstance(msg, dict) or "method" not in msg:
                continue  # replies to our notifications do not exist; ignore
            self._dispatch(msg)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        name, req_id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
        if name == "$/cancelRequest":
            ctx = self.inflight.get(params.get("id"))
            if ctx is not None:
                ctx.cancelled.set()
            return
        if name == "exit":
            self.stopping.set()
            return
        if name == "initialized":
            return
        if req_id is None:  # a host notification (e.g. trigger/ack): the plugin's hook, off the loop
            loop = asyncio.get_running_loop()
            loop.run_in_executor(self.pool, self.plugin.on_notification, str(name), params)
            return
        task = asyncio.get_running_loop().create_task(self._handle(req_id, str(name), params))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, req_id: Any, name: str, params: Any) -> None:
        try:
            value = await self._call(req_id, name, params)
            reply = p.result(req_id, value)
        except p.RpcError as exc:
            reply = p.error(req_id, exc.code, exc.message, exc.data)
        except Exception as exc:
            self.plugin.last_error = f"{type(exc).__name__}: {exc}"
            self.plugin.last_error_at = time.monotonic()
            reply = p.error(req_id, p.INTERNAL_ERROR, self.plugin.last_error)
        try:
            await self.sock.send(pack(reply))
        except Exception as exc:  # unencodable result
            await self.sock.send(pack(p.error(req_id, p.INTERNAL_ERROR, f"unencodable result: {exc}")))

    def _health_in_pong(self) -> dict[str, Any]:
        """``{"health": …}`` for a pong, when health() is cheap (``health_blocks`` off): the host
        answers ``daemon health`` from it while it is fresh, without asking again."""
        plugin = self.plugin
        if plugin.health_blocks or not self.initialized:
            return {}
        try:
            health = plugin.health()
        except Exception:  # noqa: BLE001 - a live health/check reports it; the pong stays a pong
            return {}
        return {"health": self._with_uptime(health)}

    def _with_uptime(self, health: dict[str, Any]) -> dict[str, Any]:
        """A health answer as the host receives it, live or in a pong: the plugin's uptime added."""
        return {"uptime_ms": int((time.monotonic() - self.plugin.started) * 1000), **health}

    async def _call(self, req_id: Any, name: str, params: Any) -> Any:
        plugin = self.plugin
        if name == "initialize":
            if not p.compatible(str(params.get("protocol_version", "0"))):
                raise p.RpcError(p.INVALID_REQUEST, f"protocol {params.get('protocol_version')} "
                                 f"is not compatible with {p.PROTOCOL_VERSION}")
            plugin.config.update(params.get("config") or {})
            await asyncio.get_running_loop().run_in_executor(self.pool, plugin.on_initialize, params)
            self.initialized = True
            return plugin.initialize_result()
        if name == "$/ping":
            return {"pong": True, "pid": os.getpid(), **self._health_in_pong()}
        if name == "shutdown":
            self.loop.call_later(2.0, self.stopping.set)  # type: ignore[union-attr]
            return None
        if not self.initialized:
            raise p.RpcError(p.NOT_INITIALIZED, "plugin not initialized: send initialize first")
        if name == "health/check":
            if plugin.health_blocks:
                health = await asyncio.get_running_loop().run_in_executor(self.pool, plugin.health)
            else:
                health = plugin.health()
            return self._with_uptime(health)
        attr = self.handlers.get(name)
        fn = getattr(plugin, attr) if attr else plugin.route(name)
        if fn is None:
            raise p.RpcError(p.METHOD_NOT_FOUND, f"{plugin.name} does not implement {name}")
        ctx = RequestContext(req_id, name, plugin=plugin)
        self.inflight[req_id] = ctx
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(params, ctx)
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, params, ctx)
        finally:
            self.inflight.pop(req_id, None)


def run_plugin(cls: type[Plugin], argv: list[str] | None = None) -> None:
    """Entry point of a plugin process."""
    args = sys.argv[1:] if argv is None else argv
    if "--manifest" in args:
        print(json.dumps(cls.manifest()))
        sys.exit(0)
    from animus.process.handle import set_parent_death_signal

    set_parent_death_signal()
    endpoint = os.environ.get(p.ENV_ENDPOINT)
    if not endpoint:
        print(f"{cls.name}: {p.ENV_ENDPOINT} is not set; this is a plugin process started by "
              f"the animus daemon (try: animus plugin ping --name {cls.name})", file=sys.stderr)
        sys.exit(2)
    code = asyncio.run(_Runtime(cls(), endpoint, os.environ.get(p.ENV_ID, cls.name)).serve())
    sys.exit(code)
