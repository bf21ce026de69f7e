"""How much chaos, of which kind, and what it did: the soak's plan and its tally.

The plan ends after N kills and M daemon kills, or after T minutes, whichever
comes first; daemon kills are spread evenly over it (by kills or by time).
The weights say how often each kind of process is drawn: a supervisor or a
zygote takes a whole subtree with it (and a second or two of two busy cores
to come back), so they are rare.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

WEIGHTS = {"worker": 20, "runner": 12, "runner_side_effecting": 15, "provider_cli": 15, "command": 15,
           "command_grandchild": 12, "zygote": 1, "supervisor": 1}
EXPENSIVE = ("zygote", "supervisor")
STOP_SHARE = 0.08  # SIGSTOP/SIGCONT pairs among the actions
CRASH_LOOP_SHARE = 0.01  # a sacrificial plugin killed into its restart budget


@dataclass
class Plan:
    kills: int | None
    daemon_kills: int
    minutes: float | None
    gap: float = 0.03  # mean pause between two actions

    def daemon_kill_due(self, done: int, kills: int, elapsed: float) -> bool:
        if done >= self.daemon_kills:
            return False
        share = (done + 1) / (self.daemon_kills + 1)
        return (self.kills is not None and kills >= self.kills * share) or \
            (self.minutes is not None and elapsed >= self.minutes * 60 * share)

    def finished(self, kills: int, daemon_kills: int, elapsed: float) -> bool:
        if self.minutes is not None and elapsed >= self.minutes * 60:
            return True
        return self.kills is not None and kills >= self.kills and daemon_kills >= self.daemon_kills


@dataclass
class Tally:
    kills: Counter[str] = field(default_factory=Counter)
    stops: Counter[str] = field(default_factory=Counter)
    worker_roles: Counter[str] = field(default_factory=Counter)  # the worker kills, by plugin role
    daemon_kills: int = 0
    side_effecting_kills: int = 0
    crash_loops: int = 0
    root_deaths: dict[str, float] = field(default_factory=dict)  # daemon/root:<pid> -> when
    lifetimes: list[tuple[float, float]] = field(default_factory=list)  # daemon up, stream connected
    timing: Counter[str] = field(default_factory=Counter)  # seconds spent, by step
    step_errors: Counter[str] = field(default_factory=Counter)  # steps void because a process vanished
