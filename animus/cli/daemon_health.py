"""``animus daemon health [--strict]``: one row per plugin, probed concurrently.

With the daemon up, live workers answer (and disabled ones report their
restart count and last error); plugins the daemon is not running, or all of
them when it is down, are probed one-shot with a 3 s deadline each. A plugin
whose supervisor a kill switch skipped (``ANIMUS_DAEMON_DISABLE_*``) is not
spawned: its row says ``skipped`` and why, and does not fail the command.

A plugin that is installed but not set up (missing key, path or CLI) and
that nothing uses is ``Unconfigured``: shown with its fix, not a failure.
Once a workflow agent, a routed kind, a trigger or the config points at it,
it is ``Unhealthy`` and the command exits 5 (see
``animus.plugin_runtime.health_policy``). ``--strict`` fails on any row that
is not Healthy. Control method: daemon/health.
"""

from __future__ import annotations


from animus.cli import context
from animus.cli.output import echo, emit_json
from animus.errors import ExitCode, Unavailable

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["health_command", "collect_health"]


def _probe(names: set[str] | None) -> list[dict[str, Any]]:
    """One-shot probes of the installed plugins in ``names`` (None: all of them)."""
    import asyncio

    from animus.plugin_runtime.oneshot import probe_many
    from animus.plugin_runtime.registry import Registry

    from animus.daemon.config import load_daemon_config

    scope = context.scope()
    plugins = [p for p in Registry(scope.plugins_dir).installed() if names is None or p.name in names]
    if not plugins:
        return []
    config = load_daemon_config(scope.project_root)  # what the daemon would pass each plugin
    rows = asyncio.run(probe_many(plugins, scope, timeout=3.0, passthrough=config.plugin_env,
                                  config=config.plugin_config))
    kinds = {p.name: list(p.manifest.kinds) for p in plugins if p.manifest is not None and p.manifest.kinds}
    return [dict(r, kinds=kinds[r["plugin"]]) if r["plugin"] in kinds else r for r in rows]


def _probed_instead(row: dict[str, Any]) -> bool:
    """Rows the daemon does not answer for: not run by it, or stopped by an operator."""
    from animus.plugin_runtime.health_policy import NOT_RUNNING

    return row.get("status") == NOT_RUNNING or (row.get("state") == "stopped" and row.get("status") == "stopped")


def collect_health(strict: bool = False) -> dict[str, Any]:
    daemon: dict[str, Any] = {"status": "not running"}
    rows: list[dict[str, Any]] = []
    to_probe: set[str] | None = None
    sources = None
    try:
        answer = context.begin("daemon/health", {"timeout": 3}, timeout=10)
        from animus.cli.plugin_refs import Sources  # read while the daemon asks its plugins

        sources = Sources(context.scope(), daemon_up=True)
        live = answer()
        daemon = live["daemon"]
        rows = [r for r in live["plugins"] if not _probed_instead(r)]
        to_probe = {str(r["plugin"]) for r in live["plugins"] if _probed_instead(r)}
    except Unavailable:
        pass
    if to_probe is None or to_probe:
        rows += _probe(to_probe)
    from animus.cli.plugin_refs import plugin_references
    from animus.plugin_runtime.health_policy import classify

    refs = plugin_references(context.scope(), rows, daemon_up=to_probe is not None, sources=sources)
    rows, ok = classify(rows, refs, strict)
    rows.sort(key=lambda r: (str(r.get("role")), str(r.get("plugin"))))
    return {"daemon": daemon, "plugins": rows, "healthy": ok, "strict": strict}


def _line(row: dict[str, Any]) -> str:
    status = str(row.get("status", "unknown")).capitalize()
    extra = f" restarts={row['restarts']}" if row.get("restarts") else ""
    if row.get("status") == "unconfigured":
        tail = f"  fix: {row['fix']}  (nothing uses it)"
    else:
        tail = f"  last_error: {row['last_error']}" if row.get("last_error") else ""
        if row.get("referenced_by"):
            tail += f"  (used by {', '.join(row['referenced_by'])})"
    return f"{row['plugin']:<20} {str(row.get('role')):<10} {status:<12} [{row.get('source', '?')}]{extra}{tail}"


def health_command(as_json: bool = False, strict: bool = False) -> int:
    report = collect_health(strict)
    if as_json:
        emit_json("animus.daemon.health.v1", report)
    else:
        d = report["daemon"]
        echo(f"daemon: {d.get('status', 'unknown').capitalize()}" + (f" (pid {d['pid']})" if d.get("pid") else ""))
        if not report["plugins"]:
            echo("no plugins installed (fix: animus plugin install-defaults --include-subjects)")
        for row in report["plugins"]:
            echo(_line(row))
    return 0 if report["healthy"] else int(ExitCode.UNAVAILABLE)
