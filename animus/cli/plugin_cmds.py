"""Bodies of ``animus plugin list`` and ``plugin info``, without Typer.

With the daemon up both ask it (control method ``plugin/installed``; for
``info`` of a plugin it runs, a ``$/ping`` through ``plugin/call``), so the
CLI neither parses YAML nor spawns the plugin; with the daemon down they
read the record and probe the plugin one-shot, as before. A missing
required variable fails early either way (exit 2), judged in the
environment the plugin would get: the daemon's when it runs, else this one.
"""

from __future__ import annotations

import time

from animus.cli import context
from animus.cli.output import echo, emit_json, err
from animus.errors import InvalidInput, NotFound, Unavailable

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["list_plugins", "info", "installed"]


def installed(name: str) -> Any:
    from animus.plugin_runtime.registry import Registry

    plugin = Registry(context.scope().plugins_dir).get(name)
    if plugin is None:
        raise NotFound(f"plugin {name!r} is not installed", fix="animus plugin list")
    return plugin


def _local_table() -> dict[str, Any]:
    from animus.plugin_runtime.listing import plugin_rows
    from animus.plugin_runtime.registry import Registry

    return plugin_rows(Registry(context.scope().plugins_dir).installed(), {})


def list_plugins(as_json: bool = False) -> int:
    try:
        table = context.call("plugin/installed", timeout=3)
    except Unavailable:
        table = _local_table()
    rows, warnings = table["plugins"], table["warnings"]
    if as_json:
        emit_json("animus.plugin.list.v1", {"plugins": rows, "warnings": warnings})
        return 0
    if not rows:
        echo("no plugins installed (fix: animus plugin install-defaults --include-subjects)")
    else:
        echo(f"{'NAME':<20} {'ROLE':<10} {'VERSION':<9} {'SIG':<10} {'STATE':<12} SOURCE")
        for r in rows:
            echo(f"{r['name']:<20} {r['role']:<10} {str(r['version']):<9} {r['signature']:<10} "
                 f"{r['state']:<12} {r['source']}")
    for w in warnings:
        err(f"warning: {w}")
    return 0


def _check(detail: dict[str, Any]) -> None:
    """``oneshot.require_env``'s refusals, on a detail computed wherever the plugin would run."""
    name = detail["name"]
    if detail.get("error"):
        raise InvalidInput(f"plugin {name} has a broken manifest: {detail['error']}",
                           fix=f"animus plugin install <source> --force, or animus plugin uninstall --name {name}")
    missing = detail.get("missing_env") or []
    if missing:
        raise InvalidInput(f"plugin {name} needs environment variable(s) {', '.join(missing)}",
                           fix=f"export {missing[0]}=... and run the command again")


def _live_ping(name: str) -> dict[str, Any] | None:
    """``$/ping`` through the daemon if it runs the plugin; None if it does not."""
    states = {row["name"]: row for row in context.call("plugin/list", timeout=3)}
    if (states.get(name) or {}).get("state") != "running":
        return None
    started = time.monotonic()
    reply = context.call("plugin/call", {"name": name, "method": "$/ping", "params": {}, "timeout": 5,
                                         "with_info": True}, timeout=10)
    row = {"status": "healthy" if "result" in reply else "unhealthy", "source": "daemon",
           "latency_ms": round((time.monotonic() - started) * 1000, 1), "plugin_info": reply.get("plugin_info"),
           "last_error": (reply.get("error") or {}).get("message")}
    return row


def _probe(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import asyncio

    from animus.plugin_runtime.listing import plugin_detail
    from animus.plugin_runtime.oneshot import probe

    from animus.daemon.config import load_daemon_config

    plugin = installed(name)
    detail = plugin_detail(plugin)
    _check(detail)
    config = load_daemon_config(context.scope().project_root)  # what the daemon would pass it
    return detail, asyncio.run(probe(plugin, context.scope(), "$/ping", timeout=5,
                                     passthrough=config.plugin_env(name), config=config.plugin_config(name)))


def info(name: str, as_json: bool = False) -> int:
    try:
        detail = context.call("plugin/installed", {"name": name}, timeout=5)
        _check(detail)
        row = _live_ping(name)
    except Unavailable:
        detail, row = _probe(name)
    if row is None:
        detail, row = _probe(name)
    manifest = detail["manifest"]
    data = {"name": name, "manifest": manifest, "install": detail["install"], "binary": detail["binary"],
            "initialize": row.get("plugin_info"),
            "probe": {k: row.get(k) for k in ("status", "last_error", "latency_ms")}}
    if as_json:
        emit_json("animus.plugin.info.v1", data)
    else:
        install = detail["install"]
        echo(f"{manifest['name']} {manifest['version']} ({manifest['role']}) — {manifest['description']}")
        echo(f"command: {data['binary']}")
        echo(f"installed from {install.get('source')} at {install.get('installed_at')}, "
             f"signature {detail['signature']}")
        if manifest.get("kinds"):
            echo(f"kinds: {', '.join(manifest['kinds'])}")
        if manifest.get("env_required"):
            echo("env_required: " + ", ".join(v["name"] for v in manifest["env_required"]))
        echo(f"probe: {row.get('status')} in {row.get('latency_ms')} ms"
             + (f" (last_error: {row['last_error']})" if row.get("last_error") else ""))
    return 0 if row.get("status") != "unhealthy" else 5
