"""``animus daemon health``: one row per plugin, probed concurrently.

With the daemon up, live workers answer (and disabled ones report their
restart count and last error); plugins the daemon is not running, or all of
them when it is down, are probed one-shot with a 3 s deadline each. A plugin
whose supervisor a kill switch skipped (``ANIMUS_DAEMON_DISABLE_*``) is not
spawned: its row says ``skipped`` and why, and does not fail the command.
Control methods: daemon/health, daemon/status.
"""

from __future__ import annotations

import asyncio
from typing import Any

from animus.cli import context
from animus.cli.output import echo, emit_json
from animus.errors import ExitCode, Unavailable

__all__ = ["health_command", "collect_health"]


def collect_health() -> dict[str, Any]:
    from animus.plugin_runtime.oneshot import probe_many
    from animus.plugin_runtime.registry import Registry

    scope = context.scope()
    installed = Registry(scope.plugins_dir).installed()
    daemon: dict[str, Any] = {"status": "not running"}
    rows: list[dict[str, Any]] = []
    try:
        live = context.call("daemon/health", {"timeout": 3}, timeout=10)
        daemon = live["daemon"]
        # a plugin the operator stopped is probed one-shot like one the daemon does not run
        rows = [r for r in live["plugins"] if r.get("state") != "stopped" or r.get("status") != "stopped"]
        rows += _skipped_rows(installed, {r["plugin"] for r in rows})
    except Unavailable:
        pass
    seen = {r["plugin"] for r in rows}
    rest = [p for p in installed if p.name not in seen]
    if rest:
        from animus.daemon.config import load_daemon_config

        config = load_daemon_config(scope.project_root)
        rows += asyncio.run(probe_many(rest, scope, timeout=3.0, passthrough=config.plugin_env))
    rows.sort(key=lambda r: (str(r.get("role")), str(r.get("plugin"))))
    return {"daemon": daemon, "plugins": rows, "healthy": all(r.get("status") != "unhealthy" for r in rows)}


def _skipped_rows(installed: list[Any], seen: set[str]) -> list[dict[str, Any]]:
    """Rows for plugins whose supervisor the daemon skipped at start (a kill switch)."""
    from animus.daemon.plugin_children import SUPERVISOR_OF_ROLE

    tree = context.call("daemon/status", timeout=10)["tree"]
    # the root marks a supervisor it skipped as stopped, with "skipped: <VAR> is set"
    skipped = {n["name"]: str(n["last_error"]) for n in tree
               if n.get("state") == "stopped" and str(n.get("last_error") or "").startswith("skipped:")}
    return [{"plugin": p.name, "role": p.role, "status": "skipped", "source": "daemon",
             "last_error": skipped[SUPERVISOR_OF_ROLE[p.role]]}
            for p in installed if p.name not in seen and SUPERVISOR_OF_ROLE.get(p.role) in skipped]


def health_command(as_json: bool) -> int:
    report = collect_health()
    if as_json:
        emit_json("animus.daemon.health.v1", report)
    else:
        d = report["daemon"]
        echo(f"daemon: {d.get('status', 'unknown').capitalize()}" + (f" (pid {d['pid']})" if d.get("pid") else ""))
        if not report["plugins"]:
            echo("no plugins installed (fix: animus plugin install-defaults --include-subjects)")
        for row in report["plugins"]:
            status = str(row.get("status", "unknown")).capitalize()
            extra = f" restarts={row['restarts']}" if row.get("restarts") else ""
            last = f"  last_error: {row['last_error']}" if row.get("last_error") else ""
            echo(f"{row['plugin']:<20} {str(row.get('role')):<10} {status:<10} "
                 f"[{row.get('source', '?')}]{extra}{last}")
    return 0 if report["healthy"] else int(ExitCode.UNAVAILABLE)

