"""An exit, described once: exit code or signal, and whether it was normal."""

from __future__ import annotations

import signal
from dataclasses import dataclass

__all__ = ["ExitReason"]


@dataclass(frozen=True)
class ExitReason:
    code: int | None = None
    signal: int | None = None
    requested: bool = False  # the supervisor (or an operator) asked it to stop

    @classmethod
    def from_status(cls, status: int, requested: bool = False) -> ExitReason:
        if status < 0:
            return cls(signal=-status, requested=requested)
        return cls(code=status, requested=requested)

    @property
    def normal(self) -> bool:
        """OTP's ``normal``/``shutdown``: exit 0, or a stop we asked for."""
        return self.requested or self.code == 0

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            text = f"killed by {name}"
        else:
            text = f"exited with code {self.code}"
        return text + (" (requested)" if self.requested else "")
