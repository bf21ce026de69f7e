"""Counters, gauges and histograms of the daemon, and their two renderings.

Most counters are derived from bus events by ``count_event`` (one source of
truth: an event that happened is a count that moved). Keys render as
``name{label=value,...}`` in JSON snapshots (as the original did) and as the
Prometheus text exposition format for scrapers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Metrics", "BUCKETS_SECONDS", "render_prometheus", "RUNBOOK_COUNTERS"]

BUCKETS_SECONDS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0)
Labels = tuple[tuple[str, str], ...]

RUNBOOK_COUNTERS = (
    "plugin_disabled_total",
    "subscription_events_total",
    "workflow_runs_total",
    "agent_runs_total",
)

_TERMINAL_WORKFLOW = {
    "workflow_completed": "completed",
    "workflow_failed": "failed",
    "workflow_blocked": "blocked",
    "workflow_cancelled": "cancelled",
}


def _key(name: str, labels: Labels) -> str:
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in labels) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.counters: dict[tuple[str, Labels], float] = {}
        self.histograms: dict[tuple[str, Labels], list[float]] = {}
        self.gauge_sources: dict[str, Callable[[], dict[str, float]]] = {}
        for name in RUNBOOK_COUNTERS:  # present (zero) from the first snapshot
            self.counters[(name, ())] = 0.0

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted((k, str(v)) for k, v in labels.items())))
        with self._lock:
            if labels:
                self.counters.pop((name, ()), None)
            self.counters[key] = self.counters.get(key, 0.0) + value

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            buckets = self.histograms.setdefault(key, [0.0] * (len(BUCKETS_SECONDS) + 3))
            for i, bound in enumerate(BUCKETS_SECONDS):
                if seconds <= bound:
                    buckets[i] += 1
            buckets[-3] += 1  # +Inf
            buckets[-2] += seconds  # sum
            buckets[-1] += 1  # count

    def count_event(self, event: dict[str, Any]) -> None:
        kind = event.get("kind", "")
        data = event.get("data") or {}
        self.inc("subscription_events_total", kind=kind)
        if kind in _TERMINAL_WORKFLOW:
            self.inc("workflow_runs_total", status=_TERMINAL_WORKFLOW[kind])
        elif kind == "agent_run_started":
            self.inc("agent_runs_total", provider=str(data.get("provider", "unknown")))
        elif kind == "plugin_disabled":
            self.inc("plugin_disabled_total", plugin=str(data.get("plugin", "unknown")))
        elif kind == "child_restarting":
            self.inc("plugin_restarts_total", plugin=str(data.get("child", "unknown")))
        elif kind in ("child_start_failed", "child_start_timeout", "plugin_handshake_failed"):
            self.inc("plugin_start_failures_total", plugin=str(data.get("child", "unknown")))
        elif kind == "phase_completed":
            self.inc("phase_executions_total", status=str(data.get("status", "unknown")))
            if isinstance(data.get("duration_ms"), (int, float)):
                self.observe("phase_duration_seconds", data["duration_ms"] / 1000.0)
            usage = data.get("usage") or {}
            for field in ("input_tokens", "output_tokens"):
                if isinstance(usage.get(field), (int, float)):
                    self.inc(f"agent_{field}_total", usage[field],
                             provider=str(data.get("provider") or "none"))
            if isinstance(usage.get("cost_usd"), (int, float)):
                self.inc("agent_cost_usd_total", usage["cost_usd"],
                         provider=str(data.get("provider") or "none"))
        elif kind == "trigger_event":
            self.inc("trigger_events_total", plugin=str(data.get("plugin", "unknown")),
                     routed=str(bool(data.get("routed"))).lower())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counters = {_key(n, lb): v for (n, lb), v in sorted(self.counters.items())}
            hists = {
                _key(n, lb): {
                    "buckets": {str(b): v[i] for i, b in enumerate(BUCKETS_SECONDS)} | {"+Inf": v[-3]},
                    "sum": v[-2],
                    "count": v[-1],
                }
                for (n, lb), v in sorted(self.histograms.items())
            }
        gauges: dict[str, float] = {"daemon_uptime_seconds": round(time.time() - self.started, 3)}
        for source in list(self.gauge_sources.values()):
            try:
                gauges.update(source())
            except Exception:  # a gauge source must never break a metrics read
                continue
        return {
            "counters": counters,
            "gauges": dict(sorted(gauges.items())),
            "histograms": hists,
            "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "uptime_seconds": gauges["daemon_uptime_seconds"],
        }


def _prom_key(key: str) -> tuple[str, str]:
    if "{" not in key:
        return key, ""
    name, rest = key.split("{", 1)
    pairs = [p.split("=", 1) for p in rest.rstrip("}").split(",") if p]
    return name, "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}"


def render_prometheus(snapshot: dict[str, Any]) -> str:
    lines: list[str] = []
    typed: set[str] = set()

    def emit(kind: str, key: str, value: float) -> None:
        name, labels = _prom_key(key)
        name = "animus_" + name
        if name not in typed:
            lines.append(f"# TYPE {name} {kind}")
            typed.add(name)
        lines.append(f"{name}{labels} {value:g}")

    for key, value in snapshot["counters"].items():
        emit("counter", key, value)
    for key, value in snapshot["gauges"].items():
        emit("gauge", key, value)
    for key, hist in snapshot["histograms"].items():
        name, labels = _prom_key(key)
        name = "animus_" + name
        lines.append(f"# TYPE {name} histogram")
        inner = labels[1:-1]
        for bound, count in hist["buckets"].items():
            sep = "," if inner else ""
            lines.append(f'{name}_bucket{{{inner}{sep}le="{bound}"}} {count:g}')
        lines.append(f"{name}_sum{labels} {hist['sum']:g}")
        lines.append(f"{name}_count{labels} {hist['count']:g}")
    return "\n".join(lines) + "\n"
