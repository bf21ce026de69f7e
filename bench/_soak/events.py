"""What the daemon says it did: its capture lane (``logs/events.jsonl``), followed live.

``LogFollower`` reads the lines appended since its last poll, across a
rotation (``events.jsonl`` renamed to ``.1``) and across a daemon SIGKILL (a
torn last line that the next start trims). ``LiveState`` keeps what the
chaos needs to aim: which phase each runner is in, when each child was last
acknowledged and how far into its restart budget it is. ``log_files`` and
``read_events`` give the whole log, oldest first, for the checks at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO


def epoch(ts: Any) -> float:
    """An event's ``ts``: epoch seconds on the bus, RFC 3339 in the log."""
    if isinstance(ts, (int, float)):
        return float(ts)
    return dt.datetime.fromisoformat(str(ts)).timestamp()


def log_files(path: Path) -> list[Path]:
    """``events.jsonl.N`` … ``.1`` then ``events.jsonl``: oldest first."""
    rotated = []
    i = 1
    while (p := path.with_name(f"{path.name}.{i}")).exists():
        rotated.append(p)
        i += 1
    return [*reversed(rotated), path] if path.exists() else list(reversed(rotated))


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    for file in log_files(path):
        with file.open("rb") as fh:
            for line in fh:
                if line.endswith(b"\n") and line.strip():
                    yield json.loads(line)


class LogFollower:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh: BinaryIO | None = None
        self.partial = b""

    def _open(self) -> bool:
        try:
            self.fh = self.path.open("rb")
        except FileNotFoundError:
            return False
        return True

    def poll(self) -> list[dict[str, Any]]:
        if self.fh is None and not self._open():
            return []
        assert self.fh is not None
        data = self.fh.read()
        try:
            rotated = os.stat(self.path).st_ino != os.fstat(self.fh.fileno()).st_ino
        except FileNotFoundError:
            rotated = False
        if rotated:  # the rest of the old file, then the new one from its start
            data += self.fh.read()
            self.fh.close()
            self.fh = None
            if self._open():
                assert self.fh is not None
                data += self.fh.read()
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def after_crash(self) -> list[dict[str, Any]]:
        """The daemon was SIGKILLed: take what it wrote, and forget a torn last line (the
        next start trims it, and appends after it)."""
        events = self.poll()
        if self.partial and self.fh is not None:
            self.fh.seek(-len(self.partial), os.SEEK_CUR)
        self.partial = b""
        return events

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()


@dataclass
class Phase:
    workflow_id: str
    phase: str
    idempotency: str
    attempt: int
    since: float


@dataclass
class LiveState:
    """What the chaos aims by, kept up to date from the events."""

    healthy_window: float
    inflight: dict[int, Phase] = field(default_factory=dict)  # runner pid -> its phase in flight
    acked: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)  # (sup, child) -> pid, when
    streak: dict[tuple[str, str], int] = field(default_factory=dict)  # last restart number
    disabled: set[str] = field(default_factory=set)
    events: int = 0

    def feed(self, events: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for e in events:
            self.events += 1
            kind, data = e["kind"], e.get("data") or {}
            if kind == "phase_started" and e["src"].startswith("runner/"):
                pid = int(e["src"].rsplit(":", 1)[1])
                self.inflight[pid] = Phase(e.get("workflow_id", ""), e.get("phase", ""),
                                           str(data.get("idempotency")), int(data.get("attempt") or 0), now)
            elif kind == "phase_completed" and e["src"].startswith("runner/"):
                self.inflight.pop(int(e["src"].rsplit(":", 1)[1]), None)
            elif kind == "child_exited":
                self.inflight.pop(int(data.get("pid") or -1), None)  # a runner gone mid-phase
                self.acked.pop((data.get("supervisor", ""), data.get("child", "")), None)
            elif kind == "child_started":
                self.acked[(data.get("supervisor", ""), data.get("child", ""))] = (int(data["pid"]), now)
            elif kind == "child_restarting":
                self.streak[(data.get("supervisor", ""), data.get("child", ""))] = int(data.get("restart") or 0)
            elif kind == "plugin_disabled":
                self.disabled.add(str(data.get("plugin")))
            elif kind == "daemon_startup":
                self.disabled.clear()
                self.streak.clear()
                self.acked.clear()
                self.inflight.clear()

    def risky(self, supervisor: str, child: str, limit: int) -> bool:
        """Killing this child now could spend its budget: it has been restarted ``limit``
        times in a row and is not yet up for the healthy window."""
        key = (supervisor, child)
        started = self.acked.get(key)
        if started is None:
            return True  # not acknowledged yet: starting, or between restarts
        if time.monotonic() - started[1] > self.healthy_window + 0.5:
            return False
        return self.streak.get(key, 0) >= limit
