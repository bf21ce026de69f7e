"""Counters, gauges and histograms of the daemon, and their two renderings.

Most counters are derived from bus events by ``count_event`` (one source of
truth: an event that happened is a count that moved). Keys render as
``name{label=value,...}`` in JSON snapshots (as the original did) and as the
Prometheus text exposition format for scrapers.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable
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

# Label values come from events (kinds, plugin names): keep them readable in
# both renderings and keep a misbehaving publisher from growing the table
# without bound.
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/@+-]")
MAX_LABEL_CHARS = 64
MAX_SERIES_PER_NAME = 1000
OVERFLOW = "_other"

_TERMINAL_WORKFLOW = {
    "workflow_completed": "completed",
    "workflow_failed": "failed",
    "workflow_blocked": "blocked",
    "workflow_cancelled": "cancelled",
}


_REMOTE_CLIENT_SRC = "remote/"
_SPECIAL_KINDS = frozenset({
    *_TERMINAL_WORKFLOW, "agent_run_started", "plugin_disabled", "child_restarting",
    "child_start_failed", "child_start_timeout", "plugin_handshake_failed", "phase_completed",
    "trigger_event", "plugin_frames_dropped",
})


def label_value(value: object) -> str:
    """A label value safe in ``name{k=v}`` keys and Prometheus text."""
    text = str(value)
    if len(text) <= MAX_LABEL_CHARS and not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub("_", text[:MAX_LABEL_CHARS])


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
        self._series: dict[str, int] = {}
        for name in RUNBOOK_COUNTERS:  # present (zero) from the first snapshot
            self.counters[(name, ())] = 0.0

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted((k, label_value(v)) for k, v in labels.items())))
        with self._lock:
            self._add(key, value)

    def _add(self, key: tuple[str, Labels], value: float) -> None:
        """Add to a counter; the caller holds the lock."""
        counters = self.counters
        if key not in counters:
            name, labels = key
            if labels:
                counters.pop((name, ()), None)
                series = self._series[name] = self._series.get(name, 0) + 1
                if series > MAX_SERIES_PER_NAME:
                    key = (name, tuple((k, OVERFLOW) for k, _ in labels))
        counters[key] = counters.get(key, 0.0) + value

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        key = (name, tuple(sorted((k, label_value(v)) for k, v in labels.items())))
        with self._lock:
            buckets = self.histograms.setdefault(key, [0.0] * (len(BUCKETS_SECONDS) + 3))
            for i, bound in enumerate(BUCKETS_SECONDS):
                if seconds <= bound:
                    buckets[i] += 1
            buckets[-3] += 1  # +Inf
            buckets[-2] += seconds  # sum
            buckets[-1] += 1  # count

    def count_event(self, event: dict[str, Any]) -> None:
        self.count_events((event,))

    def count_events(self, events: Iterable[dict[str, Any]]) -> None:
        """Count a batch of events: one lock per batch on the log writer's hot path."""
        kinds: dict[str, int] = {}
        special = []
        for event in events:
            kind = event.get("kind", "")
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind in _SPECIAL_KINDS:
                special.append(event)
        with self._lock:
            for kind, n in kinds.items():
                self._add(("subscription_events_total", (("kind", label_value(kind)),)), n)
        for event in special:
            if event["kind"] in _TERMINAL_WORKFLOW and str(event.get("src", "")).startswith(_REMOTE_CLIENT_SRC):
                continue  # a bus.tcp client (the gate holds it to remote/…) never ends a workflow
            data = event.get("data")
            self._count_special(event["kind"], data if isinstance(data, dict) else {})

    def _count_special(self, kind: str, data: dict[str, Any]) -> None:
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
            if _is_number(data.get("duration_ms")):
                self.observe("phase_duration_seconds", data["duration_ms"] / 1000.0)
            usage = data.get("usage")
            usage = usage if isinstance(usage, dict) else {}
            provider = str(data.get("provider") or "none")
            for field in ("input_tokens", "output_tokens"):
                if _is_number(usage.get(field)):
                    self.inc(f"agent_{field}_total", usage[field], provider=provider)
            if _is_number(usage.get("cost_usd")):
                self.inc("agent_cost_usd_total", usage["cost_usd"], provider=provider)
        elif kind == "plugin_frames_dropped" and _is_number(data.get("count")):
            self.inc("plugin_frames_dropped_total", data["count"], supervisor=str(data.get("supervisor", "unknown")))
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


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _prom_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _prom_key(key: str) -> tuple[str, str]:
    if "{" not in key:
        return key, ""
    name, rest = key.split("{", 1)
    pairs = [p.split("=", 1) for p in rest[:-1].split(",") if p] if rest.endswith("}") else []
    return name, "{" + ",".join(f'{p[0]}="{_prom_escape(p[-1])}"' for p in pairs) + "}"


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
