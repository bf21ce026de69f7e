"""One-shot plugin probes: spawn, handshake, a request, shutdown — with deadlines.

Used by ``plugin ping|info|call`` and by ``daemon health`` when the daemon is
down (or for plugins it is not running). Each probe binds its own private
ROUTER; probes run concurrently, so 32 plugins cost about one probe's wall
time plus their interpreters' start-up.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from typing import Any

import zmq
import zmq.asyncio

from animus.errors import InvalidInput
from animus.state.scope import Scope
from animus.supervision import process
from animus.supervision.spec import Timeout
from animus.workers import protocol as p
from animus.workers.host import PluginCallError, PluginHost
from animus.workers.registry import InstalledPlugin

__all__ = ["probe", "probe_many", "require_env"]


def require_env(plugin: InstalledPlugin) -> None:
    """Fail early, naming each missing required env var."""
    if plugin.manifest is None:
        raise InvalidInput(f"plugin {plugin.name} has a broken manifest: {plugin.error}",
                           fix=f"animus plugin install <source> --force, or animus plugin uninstall --name {plugin.name}")
    missing = plugin.manifest.missing_env()
    if missing:
        raise InvalidInput(f"plugin {plugin.name} needs environment variable(s) {', '.join(missing)}",
                           fix=f"export {missing[0]}=... and run the command again")


async def probe(plugin: InstalledPlugin, scope: Scope, method: str = "health/check",
                params: dict[str, Any] | None = None, timeout: float = 3.0,
                ctx: zmq.asyncio.Context | None = None) -> dict[str, Any]:
    """Return ``{"status", "result"|"error", "latency_ms", ...}``; never raises for plugin faults."""
    from animus.config import load_daemon_config
    from animus.workers.plugin_specs import plugin_env

    started = time.monotonic()
    row: dict[str, Any] = {"plugin": plugin.name, "role": plugin.role, "source": "probe"}
    if plugin.manifest is None:
        return row | {"status": "unhealthy", "last_error": plugin.error}
    ctx = ctx or zmq.asyncio.Context.instance()
    sock_dir = tempfile.mkdtemp(prefix="animus-probe-")
    os.chmod(sock_dir, 0o700)
    endpoint = f"ipc://{sock_dir}/p"
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[dict[str, Any]] = loop.create_future()

    def on_ready(child: str, pid: int, info: dict[str, Any]) -> bool:
        if not ready.done():
            ready.set_result(info)
        return True

    def on_failed(child: str, error: str) -> None:
        if not ready.done():
            ready.set_exception(RuntimeError(error))

    host = PluginHost(ctx, endpoint, on_ready, on_failed, lambda *a: None,
                      configs={plugin.name: plugin.manifest.config})
    host.start()
    config = load_daemon_config(scope.project_root)
    env = plugin_env(plugin, scope, config, {p.ENV_ENDPOINT: endpoint})
    env["ANIMUS_HOST_SILENCE_SECS"] = str(max(timeout * 2, 5))
    child = None
    try:
        child = process.spawn(plugin.manifest.argv(), env, scope.project_root)
        exited = loop.run_in_executor(None, child.popen.wait)
        done, _ = await asyncio.wait({ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            if exited in done:
                tail = _stderr_tail(child)
                raise RuntimeError(f"exited with code {child.popen.returncode} during start"
                                   + (f": {tail}" if tail else ""))
            raise RuntimeError(f"no handshake within {timeout:g}s (hung at start?)")
        info = ready.result()
        row["plugin_info"] = info.get("plugin_info", {})
        remaining = max(timeout - (time.monotonic() - started), 0.5)
        try:
            result = await host.request(plugin.name, method, params or {}, remaining)
            row["result"] = result
            if method == "health/check" and isinstance(result, dict):
                row["status"] = result.get("status", "unhealthy")
                row["last_error"] = result.get("last_error")
            else:
                row["status"] = "healthy"
        except PluginCallError as exc:
            row |= {"status": "unhealthy" if method == "health/check" else "healthy",
                    "error": {"code": exc.code, "message": exc.message, "data": exc.data},
                    "last_error": exc.message}
        try:
            await host.request(plugin.name, "shutdown", {}, 1.0)
            await host.notify(plugin.name, "exit", {})
        except Exception:
            pass
    except Exception as exc:
        row |= {"status": "unhealthy", "last_error": str(exc)}
    finally:
        if child is not None:
            await process.terminate(child, Timeout(2.0))
        host.close()
        try:
            os.unlink(f"{sock_dir}/p")
            os.rmdir(sock_dir)
        except OSError:
            pass
    row["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
    return row


def _stderr_tail(child: process.ChildProcess) -> str:
    stream = child.popen.stderr
    if stream is None:
        return ""
    try:
        os.set_blocking(stream.fileno(), False)
        data = stream.read() or b""
    except (OSError, ValueError):
        data = b""
    lines = [ln for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-400:]


async def probe_many(plugins: list[InstalledPlugin], scope: Scope, timeout: float = 3.0) -> list[dict[str, Any]]:
    ctx = zmq.asyncio.Context()
    try:
        return list(await asyncio.gather(*(probe(pl, scope, timeout=timeout, ctx=ctx) for pl in plugins)))
    finally:
        ctx.destroy(linger=0)
