"""Did every supervisor restart each child exactly as its policy allows? A replay of the log.

For every supervisor instance (an event ``src``: name and pid) and every
permanent child, the child's exits and the supervisor's decisions are
replayed against the restart budget (``animus.supervision.restart_budget``):
an unrequested exit must be followed by exactly one decision —
``child_restarting`` with restart number ``n + 1`` (or 1 when the child had
stayed up for the healthy window), ``plugin_disabled`` once ``max_restarts``
restarts are spent, or ``supervisor_escalated`` when the supervisor's
intensity is exceeded — and a decision must follow an exit.

The supervisor measures uptime from the moment it spawned the child; the
log shows when it decided to restart (``child_restarting`` + its delay, a
lower bound of the spawn) and when the child acknowledged (``child_started``,
an upper bound). An exit whose uptime bounds straddle the healthy window may
go either way; anything else has one right answer. A decision missing
because the supervisor itself died right after the exit (its last events
lost with it) is not counted.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from _soak.events import epoch

EPS = 0.05  # wall clock in the log vs the supervisor's monotonic clock, and emit order


@dataclass
class ChildTrack:
    restarts: int = 0  # the streak the budget holds
    spawn_lo: float | None = None  # the current instance was spawned after this …
    spawn_hi: float | None = None  # … and before this (its acknowledgement)
    awaiting: float | None = None  # ts of an unrequested exit still waiting for its decision
    can_reset: bool = True  # False after a start that never spawned (start_failed)


@dataclass
class BudgetReport:
    mismatches: list[str] = field(default_factory=list)
    decisions: int = 0
    restarts: int = 0
    disabled: int = 0
    escalations: int = 0


def _runner(child: str) -> bool:
    return child.startswith("wf-")  # workflow runners: temporary children, never restarted


def replay(events: Iterable[dict[str, Any]], policy: dict[str, Any], intensity: dict[str, Any],
           died_at: dict[str, float]) -> BudgetReport:
    """``died_at``: src -> when that supervisor instance died (its last events may be missing)."""
    window, limit = float(policy["healthy_window"]), int(policy["max_restarts"])
    report = BudgetReport()
    tracks: dict[tuple[str, str], ChildTrack] = defaultdict(ChildTrack)
    recent: dict[str, deque[float]] = defaultdict(deque)  # src -> restart times (intensity)

    def expected(t: ChildTrack, exit_ts: float) -> set[int]:
        """The restart numbers the budget may give (``limit + 1`` meaning: disabled)."""
        lo = None if t.spawn_hi is None else exit_ts - t.spawn_hi  # uptime bounds
        hi = None if t.spawn_lo is None else exit_ts - t.spawn_lo
        options = set()
        if t.can_reset and (lo is None or lo >= window - EPS or hi is None or hi >= window - EPS):
            options.add(0)  # it may have stayed up for the window
        if not t.can_reset or hi is None or lo is None or lo < window + EPS:
            options.add(t.restarts)
        if t.restarts == 0:
            options = {0}
        return {r + 1 for r in options}

    def decide(src: str, child: str, got: int, ts: float, what: str) -> None:
        t = tracks[(src, child)]
        if t.awaiting is None:
            report.mismatches.append(f"{src} {child}: {what} with no exit before it")
            return
        allowed = expected(t, t.awaiting)
        if got not in allowed:
            want = " or ".join(("disabled" if n > limit else f"restart {n}") for n in sorted(allowed))
            report.mismatches.append(f"{src} {child}: {what} after the exit at {t.awaiting:.3f}, expected {want}")
        t.awaiting = None
        report.decisions += 1

    for e in events:
        kind = e["kind"]
        if kind not in ("child_started", "child_exited", "child_restarting", "plugin_disabled",
                        "supervisor_escalated", "child_start_failed"):
            continue
        src, data, ts = e["src"], e.get("data") or {}, epoch(e["ts"])
        child = str(data.get("child") or data.get("plugin") or "")
        if kind == "supervisor_escalated":
            report.escalations += 1
            pending = [(k, t) for k, t in tracks.items() if k[0] == src and t.awaiting is not None]
            stamps = recent[src]
            if not pending or len(stamps) < int(intensity["intensity"]) - 1:
                report.mismatches.append(f"{src}: escalated after {len(stamps)} restarts in "
                                         f"{intensity['period']}s (intensity {intensity['intensity']})")
            for _, t in pending:
                t.awaiting = None
            continue
        if _runner(child):
            continue
        t = tracks[(src, child)]
        if kind == "child_started":
            t.spawn_hi = ts
            t.can_reset = True
        elif kind == "child_start_failed":
            t.can_reset = False  # nothing was spawned: the budget's clock has no start
        elif kind == "child_exited":
            if t.awaiting is not None:
                report.mismatches.append(f"{src} {child}: exit at {ts:.3f} while the exit at "
                                         f"{t.awaiting:.3f} had no decision")
            if not data.get("requested"):
                t.awaiting = ts
                if t.spawn_hi is None or (t.spawn_lo is not None and t.spawn_hi < t.spawn_lo):
                    t.spawn_hi = ts  # died before acknowledging: spawned before now
        elif kind == "child_restarting":
            n = int(data.get("restart") or 0)
            decide(src, child, n, ts, f"restart {n}")
            t.restarts = n
            t.spawn_lo = ts + float(data.get("delay") or 0.0)
            t.spawn_hi = None
            report.restarts += 1
            stamps = recent[src]
            stamps.append(ts)
            while stamps and ts - stamps[0] > float(intensity["period"]) + EPS:
                stamps.popleft()
        elif kind == "plugin_disabled":
            decide(src, child, limit + 1, ts, f"disabled after {data.get('restarts')} restarts")
            report.disabled += 1
    for (src, child), t in tracks.items():
        if t.awaiting is None:
            continue
        died = died_at.get(src)
        if died is not None and died - t.awaiting < 2.0:
            continue  # the supervisor died right after: its decision died with it
        report.mismatches.append(f"{src} {child}: the exit at {t.awaiting:.3f} was never decided")
    return report
