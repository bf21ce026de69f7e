"""Grouping file changes into one trigger event: a quiet-period debouncer.

Changes collect until none has arrived for ``quiet`` seconds, then come out
as one batch (the last change per path). So that a path that never stops
changing cannot starve the trigger, a batch also comes out ``max_wait``
seconds after its first change. Pure: the caller passes the clock.
"""

from __future__ import annotations

__all__ = ["Debouncer"]


class Debouncer:
    def __init__(self, quiet: float, max_wait: float | None = None) -> None:
        self.quiet = max(0.0, quiet)
        self.max_wait = max_wait if max_wait is not None else max(self.quiet * 10, 1.0)
        self.pending: dict[str, str] = {}
        self.first = 0.0
        self.last = 0.0

    def add(self, path: str, change: str, now: float) -> None:
        if not self.pending:
            self.first = now
        self.pending[path] = change
        self.last = now

    def due(self, now: float) -> bool:
        return bool(self.pending) and (now - self.last >= self.quiet or now - self.first >= self.max_wait)

    def take(self, now: float) -> list[tuple[str, str]] | None:
        """The batch, if it is due (and then the debouncer is empty again)."""
        if not self.due(now):
            return None
        batch = sorted(self.pending.items())
        self.pending = {}
        return batch
