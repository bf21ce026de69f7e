"""The restart decision: events and the clock in, an action out.

This is the whole of a supervisor's judgement, kept free of processes so it
can be tested with a fake clock. The process layer (``supervisor.py``) feeds
it exits and carries out what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from animus.supervision.exit_reason import ExitReason
from animus.supervision.intensity import Intensity
from animus.supervision.restart_budget import Allow, RestartBudget
from animus.supervision.spec import ChildSpec, Restart, SupervisorFlags
from animus.supervision.strategy import plan

__all__ = ["Ignore", "RestartChildren", "Disable", "Escalate", "Decision", "RestartPolicy"]


@dataclass(frozen=True)
class Ignore:
    """Nothing to do (temporary child, transient clean exit, operator stop)."""

    child: str


@dataclass(frozen=True)
class RestartChildren:
    failed: str
    stop: tuple[str, ...]
    start: tuple[str, ...]
    delay: float
    restart_number: int


@dataclass(frozen=True)
class Disable:
    """The child spent its budget: keep it down until the daemon restarts."""

    child: str
    restarts: int


@dataclass(frozen=True)
class Escalate:
    """Restart intensity exceeded: this supervisor must exit."""

    reason: str


Decision = Ignore | RestartChildren | Disable | Escalate


class RestartPolicy:
    def __init__(self, flags: SupervisorFlags, children: list[ChildSpec]) -> None:
        self.flags = flags
        self.specs: dict[str, ChildSpec] = {}
        self.order: list[str] = []
        self.budgets: dict[str, RestartBudget] = {}
        self.disabled: set[str] = set()
        self.intensity = Intensity(flags.intensity, flags.period)
        for spec in children:
            self.add(spec)

    def add(self, spec: ChildSpec) -> None:
        if spec.id in self.specs:
            raise ValueError(f"duplicate child id {spec.id!r}")
        self.specs[spec.id] = spec
        self.order.append(spec.id)
        self.budgets[spec.id] = RestartBudget(spec.backoff)

    def remove(self, child: str) -> None:
        self.specs.pop(child, None)
        self.budgets.pop(child, None)
        if child in self.order:
            self.order.remove(child)

    def started(self, child: str, now: float) -> None:
        self.budgets[child].record_start(now)

    def on_exit(self, child: str, reason: ExitReason, now: float) -> Decision:
        spec = self.specs[child]
        if reason.requested or spec.restart is Restart.TEMPORARY:
            return Ignore(child)
        if spec.restart is Restart.TRANSIENT and reason.normal:
            return Ignore(child)
        verdict = self.budgets[child].record_exit(now)
        if not isinstance(verdict, Allow):
            self.disabled.add(child)
            return Disable(child, verdict.restarts)
        if not self.intensity.record(now):
            return Escalate(
                f"more than {self.flags.intensity} restarts in {self.flags.period}s"
            )
        live = [c for c in self.order if c not in self.disabled]
        steps = plan(self.flags.strategy, live, child)
        return RestartChildren(child, steps.stop, steps.start, verdict.delay, verdict.restart_number)
