"""The web UI's small charts, counted here from the event log and the run table.

Three pictures an operator would rather look at than read: restarts and
disabled children over time (``child_exited`` / ``child_restarting`` /
``child_started`` / ``plugin_disabled``), runs per hour by outcome (the terminal ``workflow_*``
events, counted as the metrics count them), and what the work cost: per task
(the runs' usage) and per provider per hour (``phase_completed``, the event
behind ``agent_cost_usd_total``). Counting next to the data means the page
gets a few dozen numbers instead of thousands of log lines.

The log is read newest first up to ``LOG_LIMIT`` lines per kind of event
(``search`` is only a prefilter: the kind is checked exactly here); a window
that reaches further back than that says so (``truncated``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from animus.plugins.transports.link import DaemonLink
from animus.plugins.transports.sse import from_log

__all__ = ["chart_data", "Window", "timeline", "runs_per_hour", "cost_per_provider", "cost_per_task"]

HOUR = 3600
LOG_LIMIT = 20_000
TOP_TASKS = 8
TERMINAL = {"workflow_completed": "completed", "workflow_failed": "failed",
            "workflow_blocked": "blocked", "workflow_cancelled": "cancelled"}
RUNNERS = "workflows"  # the supervisor of workflow runs: their exits are runs ending, not restarts
_REMOTE = "remote/"  # a bus.tcp client never ends a workflow (as in the metrics)


@dataclass(frozen=True)
class Window:
    """``hours`` whole hours ending with the current one."""

    end: float
    hours: int

    @property
    def start(self) -> float:
        return (self.end // HOUR + 1 - self.hours) * HOUR

    def slot(self, ts: float) -> int | None:
        index = int((ts - self.start) // HOUR)
        return index if 0 <= index < self.hours else None

    def labels(self) -> list[float]:
        return [self.start + i * HOUR for i in range(self.hours)]


def _ts(event: dict[str, Any]) -> float:
    ts = event.get("ts")
    return float(ts) if isinstance(ts, (int, float)) else 0.0


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def timeline(events: list[dict[str, Any]], window: Window) -> list[dict[str, Any]]:
    """Per child (not workflow runs): its crashes, restarts and disabled spans in the window."""
    rows: dict[str, dict[str, Any]] = {}
    for ev in sorted(events, key=_ts):
        data, kind, ts = ev.get("data") or {}, ev.get("kind"), _ts(ev)
        child = str(data.get("child") or data.get("plugin") or "")
        if not child or data.get("supervisor") == RUNNERS:
            continue
        row = rows.setdefault(child, {"child": child, "marks": [], "disabled": []})
        spans = row["disabled"]
        if kind == "plugin_disabled":
            spans.append([max(ts, window.start), None])
            mark = "disabled"
        elif kind == "child_started":  # up again: a disabled span ends
            if spans and spans[-1][1] is None:
                spans[-1][1] = ts
            mark = ""
        elif kind == "child_restarting":  # the supervisor's decision, counted as plugin_restarts_total
            mark = "restarted"
        elif kind == "child_exited" and not data.get("requested"):
            mark = "crashed"
        else:
            continue
        if mark and ts >= window.start:
            row["marks"].append({"ts": ts, "kind": mark, "reason": str(data.get("reason") or data.get("last_error") or "")[:200]})
    shown = [r for r in rows.values() if r["marks"] or any(s[1] is None or s[1] >= window.start for s in r["disabled"])]
    return sorted(shown, key=lambda r: r["child"])


def runs_per_hour(events: list[dict[str, Any]], window: Window) -> dict[str, list[int]]:
    series = {outcome: [0] * window.hours for outcome in TERMINAL.values()}
    for ev in events:
        outcome = TERMINAL.get(str(ev.get("kind")))
        slot = window.slot(_ts(ev))
        if outcome and slot is not None and not str(ev.get("src", "")).startswith(_REMOTE):
            series[outcome][slot] += 1
    return series


def cost_per_provider(events: list[dict[str, Any]], window: Window) -> dict[str, list[float]]:
    series: dict[str, list[float]] = {}
    for ev in events:
        data = ev.get("data") or {}
        cost = _number((data.get("usage") or {}).get("cost_usd"))
        slot = window.slot(_ts(ev))
        if ev.get("kind") != "phase_completed" or not cost or slot is None:
            continue
        series.setdefault(str(data.get("provider") or "none"), [0.0] * window.hours)[slot] += cost
    return dict(sorted(series.items()))


def cost_per_task(workflows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The costliest tasks, with all their runs' cost (a run without a task counts as its own id)."""
    totals: dict[str, dict[str, Any]] = {}
    for wf in workflows:
        cost = _number((wf.get("usage") or {}).get("cost_usd"))
        if not cost:
            continue
        task = str(wf.get("subject_id") or wf.get("id"))
        row = totals.setdefault(task, {"task": task, "cost_usd": 0.0, "runs": 0})
        row["cost_usd"] += cost
        row["runs"] += 1
    return sorted(totals.values(), key=lambda r: (-r["cost_usd"], r["task"]))[:TOP_TASKS]


async def _events(link: DaemonLink, cat: str, search: str, kinds: set[str]) -> tuple[list[dict[str, Any]], bool]:
    rows = await link.call("daemon/logs", {"limit": LOG_LIMIT, "level": "info", "cat": cat, "search": search},
                           timeout=30)
    events = [from_log(row) for row in rows]
    return [ev for ev in events if ev.get("kind") in kinds], len(rows) >= LOG_LIMIT


async def chart_data(link: DaemonLink, hours: int) -> dict[str, Any]:
    window = Window(time.time(), hours)
    children, cut1 = await _events(link, "supervisor", "child_", {"child_started", "child_exited", "child_restarting"})
    disabled, cut2 = await _events(link, "plugin", "plugin_disabled", {"plugin_disabled"})
    ended, cut3 = await _events(link, "workflow", "workflow_", set(TERMINAL))
    phases, cut4 = await _events(link, "phase", "phase_completed", {"phase_completed"})
    workflows = await link.call("workflow/list", {"limit": 1000}, timeout=30)
    return {
        "hours": window.labels(),
        "now": window.end,
        "timeline": timeline(children + disabled, window),
        "runs_per_hour": runs_per_hour(ended, window),
        "cost_per_provider": cost_per_provider(phases, window),
        "cost_per_task": cost_per_task(workflows),
        "truncated": cut1 or cut2 or cut3 or cut4,
    }
