"""Supervisor restart intensity over a period (OTP's MaxR/MaxT).

More than ``intensity`` restarts inside ``period`` seconds means this
supervisor cannot cope: it exits and lets its parent decide (escalation).
"""

from __future__ import annotations

from collections import deque

__all__ = ["Intensity"]


class Intensity:
    def __init__(self, intensity: int, period: float) -> None:
        self.intensity = intensity
        self.period = period
        self._stamps: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Record one restart; return False when the intensity is exceeded."""
        self._stamps.append(now)
        while self._stamps and now - self._stamps[0] > self.period:
            self._stamps.popleft()
        return len(self._stamps) <= self.intensity
