"""How every command answers: one compact JSON line, or readable text.

With ``--json`` a success is one line on stdout: an object whose ``schema``
names it (``animus.<group>.<command>.v1``). An error is one line on stderr:
``{"schema": "animus.cli.v1", "ok": false, "error": {...}}``. Without
``--json`` an error is ``error: <message> (fix: <command>)``. The exit code
comes from the error's type, never from its text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from animus.errors import AnimusError, ExitCode, Internal

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["emit_json", "fail", "guard", "echo", "err"]


def emit_json(schema: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"schema": schema, **payload}, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def fail(exc: AnimusError, as_json: bool) -> NoReturn:
    if as_json:
        sys.stderr.write(json.dumps({"schema": "animus.cli.v1", "ok": False, "error": exc.to_dict()},
                                    separators=(",", ":"), default=str) + "\n")
    else:
        err(f"error: {exc.one_line()}")
        if exc.code == "invalid_input" and not exc.fix:
            err("hint: run the command with --help")
    raise SystemExit(int(exc.exit_code))


def guard(as_json: bool, body: Callable[[], int | None]) -> NoReturn:
    """Run a command body; turn errors into their one line and exit code."""
    try:
        code = body()
    except AnimusError as exc:
        fail(exc, as_json)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except (BrokenPipeError, SystemExit):
        raise
    except Exception as exc:
        fail(Internal(f"{type(exc).__name__}: {exc}", fix="report this with the output of animus doctor"), as_json)
    raise SystemExit(int(code or ExitCode.OK))
