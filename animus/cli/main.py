"""The ``animus`` command line.

One module per command group (``animus/cli/<group>.py``, gathered by
``animus.cli.app``); each is thin:
build a control message, send it, render the reply, exit with a named code.
Every command takes ``--json`` (one compact line, a named schema).
Exit codes: 0 ok, 1 internal, 2 invalid input, 3 not found, 4 conflict,
5 unavailable (daemon or plugin unreachable).

Start-up cost matters: scripts and health checks run ``animus daemon status
--json`` in loops. Importing typer (and click) and every command group costs
several times the command itself, so the app is built only when needed: the
everyday commands are dispatched first by ``animus.cli.fast`` (one table;
same bodies, output and exit codes as the Typer commands), and Typer is
imported only for the rest, ``--help``, completion and usage errors.
"""

from __future__ import annotations

import sys
from functools import lru_cache

from animus import __version__

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

    import typer

__all__ = ["main"]  # and ``app``, built on first use


@lru_cache(maxsize=1)
def _app() -> typer.Typer:
    from animus.cli.app import build

    return build()


def __getattr__(name: str) -> Any:
    if name == "app":  # built on first use (PEP 562)
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] in (["--version"], ["-V"]):
        print(f"animus {__version__}")
        return
    from animus.cli.fast import dispatch

    dispatch(argv)  # the everyday commands, without Typer; returns for everything else
    _app()(prog_name="animus")


if __name__ == "__main__":
    main()
