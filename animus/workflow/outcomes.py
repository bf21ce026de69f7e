"""How a phase can stop short of a verdict (shared by the runner and its helpers).

Kept apart from ``runner.py``, which also runs as ``__main__``: an exception
class defined there would exist twice and never be caught across modules.
"""

from __future__ import annotations

__all__ = ["Cancelled", "Parked", "Blocked"]


class Cancelled(BaseException):
    """Raised from the SIGTERM handler when the operator cancelled the run."""


class Parked(Exception):
    """The phase cannot go on now (usage limit, budget): park the workflow."""

    def __init__(self, waiting: str, not_before: float | None) -> None:
        super().__init__(waiting)
        self.waiting = waiting
        self.not_before = not_before


class Blocked(Exception):
    """The phase cannot run at all until an operator acts."""
