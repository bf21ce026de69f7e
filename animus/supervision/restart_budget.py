"""Per-child restart budget: a pure function of exits and the clock.

``record_exit(now)`` answers whether the child may be restarted and after
what delay, or whether its budget is spent. The count resets when the child
stayed up for the healthy window. No processes, no zmq: tested with a fake
clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from animus.supervision.spec import Backoff

__all__ = ["Allow", "Exhausted", "RestartBudget"]


@dataclass(frozen=True)
class Allow:
    delay: float
    restart_number: int


@dataclass(frozen=True)
class Exhausted:
    restarts: int


class RestartBudget:
    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self.restarts = 0  # consecutive restarts inside the current unhealthy streak
        self.total_restarts = 0
        self.started_at: float | None = None

    def record_start(self, now: float) -> None:
        self.started_at = now

    def record_exit(self, now: float) -> Allow | Exhausted:
        if self.started_at is not None and now - self.started_at >= self.backoff.healthy_window:
            self.restarts = 0
        self.started_at = None
        if self.restarts >= self.backoff.max_restarts:
            return Exhausted(self.restarts)
        self.restarts += 1
        self.total_restarts += 1
        return Allow(self.backoff.delay(self.restarts), self.restarts)
