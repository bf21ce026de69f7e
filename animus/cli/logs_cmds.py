"""Bodies of ``animus logs tail`` and ``animus daemon logs``, without Typer.

Reads through the daemon (control method daemon/logs) when it runs, and
``~/.animus/<scope>/logs/events.jsonl`` directly when it does not.
``--follow`` keeps printing new lines as they are appended to the file.
"""

from __future__ import annotations

import json

from animus.cli import context
from animus.cli.output import echo, emit_json, err

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["read_entries", "print_entries", "tail", "daemon_logs"]


def read_entries(limit: int, level: str | None, cat: str | None, search: str | None) -> tuple[list[dict[str, Any]], str]:
    from animus.errors import Unavailable

    params = {"limit": limit, "level": level, "cat": cat, "search": search}
    try:
        return context.call("daemon/logs", params), "daemon"
    except Unavailable:
        from animus.bus.eventlog import read_tail

        return read_tail(context.scope().events_log, limit, level, cat, None, search), "file"


def _line(entry: dict[str, Any]) -> str:
    where = "/".join(str(x) for x in (entry.get("workflow_id"), entry.get("phase")) if x)
    return f"{entry.get('ts', '')} {entry.get('level', ''):<5} {entry.get('cat', ''):<10} {entry.get('msg', '')} {where}".rstrip()


def print_entries(entries: list[dict[str, Any]], source: str, as_json: bool, schema: str) -> None:
    if as_json:
        emit_json(schema, {"source": source, "entries": entries})
        return
    if source == "file":
        err(f"daemon not running: reading {context.scope().events_log}")
    for entry in entries:
        echo(_line(entry))


def daemon_logs(limit: int = 100, search: str | None = None, level: str | None = None, as_json: bool = False) -> int:
    entries, source = read_entries(limit, level, None, search)
    print_entries(entries, source, as_json, "animus.daemon.logs.v1")
    return 0


def tail(level: str | None = None, limit: int = 100, cat: str | None = None, follow: bool = False,
         as_json: bool = False) -> int:
    entries, source = read_entries(limit, level, cat, None)
    print_entries(entries, source, as_json and not follow, "animus.logs.tail.v1")
    if follow:
        _follow(level, cat, as_json)
    return 0


def _follow(level: str | None, cat: str | None, as_json: bool) -> None:
    import os
    import time

    from animus.bus.envelope import level_at_least

    path = context.scope().events_log
    fh = open(path, "rb") if path.exists() else None
    if fh:
        fh.seek(0, 2)
    rest = b""
    try:
        while True:
            if fh is None:
                time.sleep(0.5)
                fh = open(path, "rb") if path.exists() else None
                continue
            chunk = fh.read()
            if not chunk:
                if path.exists() and path.stat().st_ino != os.fstat(fh.fileno()).st_ino:
                    fh.close()
                    fh = open(path, "rb")  # rotated
                time.sleep(0.2)
                continue
            rest += chunk
            *lines, rest = rest.split(b"\n")
            for raw in lines:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if level and not level_at_least(str(entry.get("level")), level):
                    continue
                if cat and not str(entry.get("cat", "")).startswith(cat):
                    continue
                echo(raw.decode() if as_json else _line(entry))
    except KeyboardInterrupt:
        pass
