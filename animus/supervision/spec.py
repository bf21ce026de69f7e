"""Child specs, with OTP's meaning and OTP's names.

An invalid spec cannot be built: the dataclasses validate themselves in
``__post_init__`` (as OTP's ``check_childspec`` does) and a supervisor's
children are checked for duplicate ids when the tree is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from animus.process.shutdown import BrutalKill, Infinity, Shutdown, SpecError, Timeout

__all__ = [
    "Restart",
    "Strategy",
    "ChildType",
    "BrutalKill",
    "Timeout",
    "Infinity",
    "Shutdown",
    "Backoff",
    "ChildSpec",
    "SupervisorFlags",
    "check_children",
    "SpecError",
    "RUN_ROLE",
]

# The role of a workflow run's runner. A run's process records its own session
# (runs/<id>/runner.json, swept by the workflows service), so the root's pid record
# leaves runners out: it is not rewritten twice per run.
RUN_ROLE = "workflow"


class Restart(str, Enum):
    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after an abnormal exit
    TEMPORARY = "temporary"  # never restarted


class Strategy(str, Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"
    SIMPLE_ONE_FOR_ONE = "simple_one_for_one"  # dynamic children of one template


class ChildType(str, Enum):
    WORKER = "worker"
    SUPERVISOR = "supervisor"




@dataclass(frozen=True)
class Backoff:
    """Per-child restart budget with exponential backoff.

    The first restart happens at once, then ``initial``, ``initial*factor`` ...
    capped at ``cap``. After ``max_restarts`` restarts without the child
    staying up for ``healthy_window`` seconds, the child is disabled.
    """

    max_restarts: int = 5
    initial: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    healthy_window: float = 60.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise SpecError("max_restarts must be >= 0")
        if self.initial < 0 or self.cap < 0 or self.factor < 1:
            raise SpecError("backoff needs initial >= 0, cap >= 0 and factor >= 1")
        if self.healthy_window <= 0:
            raise SpecError("healthy_window must be > 0")

    def delay(self, restart_number: int) -> float:
        """Delay before restart number ``restart_number`` (1-based)."""
        if restart_number <= 1:
            return 0.0
        return float(min(self.initial * self.factor ** (restart_number - 2), self.cap))

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Backoff:
        return cls(**raw) if raw else cls()

    def to_dict(self) -> dict[str, float]:
        return {
            "max_restarts": self.max_restarts,
            "initial": self.initial,
            "factor": self.factor,
            "cap": self.cap,
            "healthy_window": self.healthy_window,
        }


@dataclass(frozen=True)
class ChildSpec:
    """What to start, and what to do when it stops.

    ``start`` is the launch description understood by the process layer:
    ``{"argv": [...], "env": {...}, "cwd": ...}`` for an executable, or
    ``{"module": "pkg.mod"}`` for a first-party Python worker that can be
    forked from the preloaded zygote.
    """

    id: str
    start: dict[str, Any]
    restart: Restart = Restart.PERMANENT
    shutdown: Shutdown = field(default_factory=lambda: Timeout(5.0))
    type: ChildType = ChildType.WORKER
    role: str = ""  # what the child is for, shown in the tree (RUN_ROLE: a workflow run's runner)
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id:
            raise SpecError(f"child id must be non-empty and contain no '/', got {self.id!r}")
        if not isinstance(self.restart, Restart):
            raise SpecError(f"restart must be a Restart, got {self.restart!r}")
        if not isinstance(self.shutdown, (BrutalKill, Timeout, Infinity)):
            raise SpecError(f"shutdown must be BrutalKill, Timeout or Infinity, got {self.shutdown!r}")
        if self.type is ChildType.WORKER and isinstance(self.shutdown, Infinity):
            raise SpecError(f"child {self.id}: a worker cannot have an infinite shutdown")
        if "argv" not in self.start and "module" not in self.start:
            raise SpecError(f"child {self.id}: start needs 'argv' or 'module'")


@dataclass(frozen=True)
class SupervisorFlags:
    """OTP's sup_flags: strategy plus restart intensity over a period."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 50
    period: float = 10.0

    def __post_init__(self) -> None:
        if self.intensity < 0 or self.period <= 0:
            raise SpecError("intensity must be >= 0 and period > 0")


def check_children(children: list[ChildSpec]) -> None:
    seen: set[str] = set()
    for spec in children:
        if spec.id in seen:
            raise SpecError(f"duplicate child id {spec.id!r}")
        seen.add(spec.id)
