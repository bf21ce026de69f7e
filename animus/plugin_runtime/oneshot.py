"""One-shot plugin probes: spawn, handshake, a request, shutdown — with deadlines.

Used by ``plugin ping|info|call`` and by ``daemon health`` when the daemon is
down (or for plugins it is not running). Each probe binds its own private
ROUTER; probes run concurrently, so 32 plugins cost about one probe's wall
time plus their interpreters' start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import zmq
import zmq.asyncio

from animus.errors import InvalidInput
from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.host import PluginCallError, PluginHost
from animus.plugin_runtime.manifest import Manifest
from animus.plugin_runtime.plugin_env import plugin_env
from animus.plugin_runtime.registry import InstalledPlugin
from animus.process import handle as process
from animus.process.shutdown import Timeout
from animus.state.scope import Scope

__all__ = ["probe", "probe_many", "require_env", "missing_env_error"]


def require_env(plugin: InstalledPlugin) -> None:
    """Fail early, naming each missing required env var."""
    if plugin.manifest is None:
        raise InvalidInput(f"plugin {plugin.name} has a broken manifest: {plugin.error}",
                           fix=f"animus plugin install <source> --force, or animus plugin uninstall --name {plugin.name}")
    missing = plugin.manifest.missing_env()
    if missing:
        raise InvalidInput(f"plugin {plugin.name} needs environment variable(s) {', '.join(missing)}",
                           fix=f"export {missing[0]}=... and run the command again")


def missing_env_error(plugin: InstalledPlugin) -> str | None:
    """The one line naming the missing required env vars, or None."""
    missing = plugin.manifest.missing_env() if plugin.manifest is not None else []
    if not missing:
        return None
    return (f"missing required environment variable(s) {', '.join(missing)} "
            f"(fix: export {missing[0]}=... before the daemon or the command starts)")


async def probe(plugin: InstalledPlugin, scope: Scope, method: str = "health/check",
                params: dict[str, Any] | None = None, timeout: float = 3.0,
                ctx: zmq.asyncio.Context | None = None,
                boot_slots: asyncio.Semaphore | None = None, passthrough: Sequence[str] = (),
                config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return ``{"status", "result"|"error", "latency_ms", ...}``; never raises for plugin faults.

    ``timeout`` bounds the whole probe: spawn, handshake and the request.
    A plugin missing a required env var is not spawned at all. With
    ``boot_slots``, the plugin is spawned only once a slot is free, and holds
    it until it has connected: see ``probe_many``. ``passthrough`` names the
    variables the operator passes to this plugin (``plugins.<name>.env``), and
    ``config`` what the operator configures for it (``plugins.<name>.config``),
    sent over the manifest's at initialize, as under the daemon.
    """
    row: dict[str, Any] = {"plugin": plugin.name, "role": plugin.role, "source": "probe"}
    if plugin.manifest is None:
        return row | {"status": "unhealthy", "last_error": plugin.error, "latency_ms": 0.0}
    missing = missing_env_error(plugin)
    if missing:
        return row | {"status": "unhealthy", "last_error": missing, "latency_ms": 0.0,
                      "missing_env": plugin.manifest.missing_env()}
    run = _Probe(plugin, plugin.manifest, scope, timeout, ctx or zmq.asyncio.Context.instance(),
                 {**plugin.manifest.config, **(config or {})})
    started = time.monotonic()
    try:
        started = await run.boot(passthrough, boot_slots)
        row |= await run.ask(method, params or {}, started)
        await run.goodbye()
    except Exception as exc:
        row |= {"status": "unhealthy", "last_error": str(exc) or type(exc).__name__}
    finally:
        await run.close()
    row["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return row


class _Probe:
    """One probe's private host, child and futures, in the order they are used."""

    def __init__(self, plugin: InstalledPlugin, manifest: Manifest, scope: Scope, timeout: float,
                 ctx: zmq.asyncio.Context, config: dict[str, Any]) -> None:
        self.plugin, self.manifest, self.scope, self.timeout = plugin, manifest, scope, timeout
        self.sock_dir = tempfile.mkdtemp(prefix="animus-probe-")
        os.chmod(self.sock_dir, 0o700)
        self.endpoint = f"ipc://{self.sock_dir}/p"
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.exited: asyncio.Future[int] = loop.create_future()
        self.connected: asyncio.Future[None] = loop.create_future()
        self.child: process.ChildProcess | None = None
        # the handshake's own deadline is a little longer, so that a plugin that
        # never answers initialize gets the probe's clearer message
        self.host = PluginHost(ctx, self.endpoint, self._on_ready, self._on_failed, lambda *a: None,
                               configs={plugin.name: config}, handshake_timeout=timeout + 1,
                               on_connect=lambda child, pid: _settle(self.connected, None))
        self.host.start()

    def _on_ready(self, child: str, pid: int, info: dict[str, Any]) -> bool:
        _settle(self.ready, info)
        return True

    def _on_failed(self, child: str, error: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(error))

    def _env(self, passthrough: Sequence[str]) -> dict[str, str]:
        # the daemon's endpoints, as under the daemon: a plugin may need to know them even while
        # nothing answers there (transport-http reads ANIMUS_CONTROL at initialize)
        scope = self.scope
        env = plugin_env(self.plugin, scope, passthrough, {
            p.ENV_ENDPOINT: self.endpoint, p.ENV_CONTROL: scope.endpoint("control"),
            p.ENV_BUS: scope.endpoint("bus.in"), "ANIMUS_BUS_OUT": scope.endpoint("bus.out")})
        env["ANIMUS_HOST_SILENCE_SECS"] = str(max(self.timeout * 2, 5))
        return env

    async def boot(self, passthrough: Sequence[str], slots: asyncio.Semaphore | None) -> float:
        """Spawn the plugin and wait for its handshake; return when the deadline started."""
        loop = asyncio.get_running_loop()
        async with slots if slots is not None else contextlib.nullcontext():
            started = time.monotonic()  # the deadline runs from the spawn, not from the queue
            self.child = child = process.spawn(self.manifest.argv(), self._env(passthrough),
                                               self.scope.project_root)
            process.watch(loop, child, lambda _c, status: _settle(self.exited, status))
            booting: set[asyncio.Future[Any]] = {self.connected, self.ready, self.exited}
            await asyncio.wait(booting, timeout=self.timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        left = max(self.timeout - (time.monotonic() - started), 0.0)
        waiting: set[asyncio.Future[Any]] = {self.ready, self.exited}
        done, _ = await asyncio.wait(waiting, timeout=left,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self.ready not in done:
            raise RuntimeError(self._why_not_ready(child, self.exited in done))
        return started

    def _why_not_ready(self, child: process.ChildProcess, exited: bool) -> str:
        if exited:
            tail = child.last_error()
            return f"exited with code {child.returncode()} during start" + (f": {tail}" if tail else "")
        if self.plugin.name in self.host.peers:
            return f"connected but did not answer initialize within {self.timeout:g}s (hung in the handshake?)"
        return f"did not connect within {self.timeout:g}s (hung at start?)"

    async def ask(self, method: str, params: dict[str, Any], started: float) -> dict[str, Any]:
        """The handshake's info and the request's answer, as row fields."""
        info = self.ready.result()
        row: dict[str, Any] = {"plugin_info": info.get("plugin_info", {}),
                               "capabilities": info.get("capabilities", {})}
        remaining = max(self.timeout - (time.monotonic() - started), 0.5)
        try:
            result = await self.host.request(self.plugin.name, method, params, remaining)
        except PluginCallError as exc:
            return row | {"status": "unhealthy" if method == "health/check" else "healthy",
                          "error": {"code": exc.code, "message": exc.message, "data": exc.data},
                          "last_error": exc.message}
        row["result"] = result
        if method != "health/check":
            return row | {"status": "healthy"}
        if isinstance(result, dict) and result.get("status") in ("healthy", "degraded", "unhealthy"):
            # the plugin itself judged its health
            return row | {"status": result["status"], "last_error": result.get("last_error"), "answered": True}
        return row | {"status": "unhealthy", "last_error": f"health/check returned garbage: {result!r}"[:300]}

    async def goodbye(self) -> None:
        with contextlib.suppress(Exception):
            await self.host.request(self.plugin.name, "shutdown", {}, 1.0)
            await self.host.notify(self.plugin.name, "exit", {})

    async def close(self) -> None:
        if self.child is not None:
            await process.terminate(self.child, Timeout(2.0))
            try:  # let the exit watcher run, so it closes its pidfd and stderr pipe
                await asyncio.wait_for(asyncio.shield(self.exited), 1.0)
            except TimeoutError:
                pass
        self.host.close()
        with contextlib.suppress(OSError):
            os.unlink(f"{self.sock_dir}/p")
        with contextlib.suppress(OSError):
            os.rmdir(self.sock_dir)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def boot_concurrency() -> int:
    """How many plugins may be starting at once: a few per core.

    A plugin's start-up is CPU-bound (an interpreter, its imports). Spawning
    32 at once on 2 cores makes every one of them take the whole storm's
    time, so healthy plugins miss their 3 s deadline; in slots, each starts
    about as fast as alone and the total is the same CPU-bound wall time.
    A plugin frees its slot as soon as it connects, so a plugin that hangs
    in the handshake does not hold one.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(4, 4 * cores)


async def probe_many(plugins: list[InstalledPlugin], scope: Scope, timeout: float = 3.0,
                     passthrough: Callable[[str], Sequence[str]] = lambda name: (),
                     config: Callable[[str], Mapping[str, Any]] = lambda name: {}) -> list[dict[str, Any]]:
    ctx = zmq.asyncio.Context()
    slots = asyncio.Semaphore(boot_concurrency())
    try:
        return list(await asyncio.gather(*(probe(pl, scope, timeout=timeout, ctx=ctx, boot_slots=slots,
                                                 passthrough=passthrough(pl.name), config=config(pl.name))
                                           for pl in plugins)))
    finally:
        ctx.destroy(linger=0)
