"""animus logs tail: recent events from the log storage.

Reads through the daemon (control method daemon/logs) when it runs, and
``~/.animus/<scope>/logs/events.jsonl`` directly when it does not.
``--follow`` keeps printing new lines as they are appended to the file.
The body is ``animus.cli.logs_cmds.tail`` (shared with the fast path).
"""

from __future__ import annotations

from typing import Optional

import typer

from animus.cli.output import guard

app = typer.Typer(help="Read the event log.", no_args_is_help=True)


@app.command()
def tail(
    level: Optional[str] = typer.Option(None, "--level", help="Minimum level: debug, info, warn, error."),
    limit: int = typer.Option(100, "--limit"),
    cat: Optional[str] = typer.Option(None, "--cat", help="Category prefix."),
    follow: bool = typer.Option(False, "--follow", help="Keep printing new lines (Ctrl-C to stop)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The newest log lines, oldest first."""
    from animus.cli import logs_cmds

    guard(as_json, lambda: logs_cmds.tail(level, limit, cat, follow, as_json))
