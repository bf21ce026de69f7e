"""Bodies of ``animus daemon status`` and ``daemon metrics``, without Typer.

The Typer commands in ``animus.cli.daemon`` and the fast path
(``animus.cli.fast``) both call these, so both print the same thing.
Control methods: daemon/status, daemon/metrics.
"""

from __future__ import annotations


from animus.cli import context
from animus.cli.output import echo, emit_json

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["status", "metrics", "render_tree"]


def render_tree(nodes: list[dict[str, Any]], indent: str = "") -> None:
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        branch = "└─ " if last else "├─ "
        err_text = f"  last_error: {node['last_error']}" if node.get("last_error") and node.get("state") != "running" else ""
        echo(f"{indent}{branch}{node['name']:<18} {node['kind']:<10} pid={node.get('pid') or '-':<8} "
             f"{node['state']:<10} restarts={node.get('restarts', 0)}{err_text}"
             + (f"  node={node['node']}" if node.get("node") else ""))
        render_tree(node.get("children") or [], indent + ("   " if last else "│  "))


def _render_runners(runners: dict[str, Any]) -> None:
    if runners.get("backend") != "ray":
        return
    state = "connected" if runners.get("connected") else f"not connected: {runners.get('last_error')}"
    nodes = runners.get("nodes") or []
    echo(f"runners: ray at {runners.get('address')} ({state}), {len(nodes)} node(s)")
    for node in nodes:
        runs = ", ".join(node.get("runs") or []) or "-"
        echo(f"   node {node.get('ip')}/{str(node.get('node_id'))[:8]} {'alive' if node.get('alive') else 'dead'}"
             f"  runs: {runs}")


def status(as_json: bool = False) -> int:
    result = context.call("daemon/status")
    if as_json:
        emit_json(result.pop("schema"), result)
        return 0
    echo(f"animus daemon running (pid {result['pid']}, up {result['uptime_seconds']:.0f}s"
         f"{', autonomous' if result.get('autonomous') else ''})")
    echo(f"state root: {result['state_root']}")
    echo(f"root supervisor  pid={result['pid']}")
    render_tree(result["tree"])
    _render_runners(result.get("runners") or {})
    return 0


def _render_metrics(pretty: bool, fmt: str, as_json: bool) -> None:
    snap = context.call("daemon/metrics")
    if fmt == "prometheus":
        from animus.bus.metrics import render_prometheus

        print(render_prometheus(snap), end="")
    elif pretty and not as_json:
        for section in ("counters", "gauges"):
            for key, value in snap[section].items():
                echo(f"{key} {value:g}")
        for key, hist in snap["histograms"].items():
            echo(f"{key} count={hist['count']:g} sum={hist['sum']:.3f}s")
    else:
        emit_json("animus.daemon.metrics.v1", snap)


def metrics(pretty: bool = False, watch: bool = False, interval_secs: float = 5.0, fmt: str = "json",
            as_json: bool = False) -> int:
    if fmt not in ("json", "prometheus"):
        from animus.errors import InvalidInput

        raise InvalidInput(f"--format must be json or prometheus, got {fmt!r}")
    _render_metrics(pretty, fmt, as_json)
    while watch:
        import time

        time.sleep(max(interval_secs, 0.2))
        if pretty and not as_json:
            echo(f"--- {time.strftime('%H:%M:%S')}")
        _render_metrics(pretty, fmt, as_json)
    return 0
