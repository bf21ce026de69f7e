"""How a child is stopped: at once, after a timeout, or whenever it is done (OTP's shutdown)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BrutalKill", "Infinity", "Shutdown", "SpecError", "Timeout"]


class SpecError(ValueError):
    """A child or shutdown spec that makes no sense (OTP's check_childspec)."""


@dataclass(frozen=True)
class BrutalKill:
    """SIGKILL at once."""


@dataclass(frozen=True)
class Timeout:
    """SIGTERM, wait this long, then SIGKILL."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise SpecError(f"shutdown timeout must be >= 0, got {self.seconds}")


@dataclass(frozen=True)
class Infinity:
    """SIGTERM and wait for as long as it takes (supervisors)."""


Shutdown = BrutalKill | Timeout | Infinity
