"""Errors an operator sees, and the exit codes they map to.

Every error carries a one-line message and, where there is one, the command
that fixes it. The CLI renders ``error: <message>`` and appends
``(fix: <fix>)``; ``--json`` puts both in the ``animus.cli.v1`` envelope.
Exit codes follow the Decisions table: 0 ok, 1 internal, 2 invalid input,
3 not found, 4 conflict, 5 unavailable.
"""

from __future__ import annotations

from enum import IntEnum

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ExitCode",
    "AnimusError",
    "InvalidInput",
    "NotFound",
    "Conflict",
    "Unavailable",
    "Internal",
    "DAEMON_NOT_RUNNING",
]


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    INVALID_INPUT = 2
    NOT_FOUND = 3
    CONFLICT = 4
    UNAVAILABLE = 5


class AnimusError(Exception):
    """An error with a stable code, an exit code and an optional fix."""

    code = "internal"
    exit_code = ExitCode.INTERNAL

    def __init__(self, message: str, fix: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.details = details

    def one_line(self) -> str:
        text = self.message
        if self.fix:
            text += f" (fix: {self.fix})"
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "exit_code": int(self.exit_code),
        }
        if self.fix:
            out["fix"] = self.fix
        if self.details:
            out["details"] = self.details
        return out


class Internal(AnimusError):
    code = "internal"
    exit_code = ExitCode.INTERNAL


class InvalidInput(AnimusError):
    code = "invalid_input"
    exit_code = ExitCode.INVALID_INPUT


class NotFound(AnimusError):
    code = "not_found"
    exit_code = ExitCode.NOT_FOUND


class Conflict(AnimusError):
    code = "conflict"
    exit_code = ExitCode.CONFLICT


class Unavailable(AnimusError):
    code = "unavailable"
    exit_code = ExitCode.UNAVAILABLE


DAEMON_NOT_RUNNING = "daemon not running: start it with animus daemon start"

_BY_CODE = {cls.code: cls for cls in (Internal, InvalidInput, NotFound, Conflict, Unavailable)}


def from_dict(payload: dict[str, Any]) -> AnimusError:
    """Rebuild an error sent over the control socket."""
    cls = _BY_CODE.get(str(payload.get("code")), Internal)
    return cls(
        str(payload.get("message", "unknown error")),
        fix=payload.get("fix"),
        details=payload.get("details"),
    )
