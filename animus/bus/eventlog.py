"""``logs/events.jsonl``: every bus event, one JSON object per line.

The writer appends whole lines with one ``os.write`` per batch, so a killed
process leaves at most a torn last line, which ``repair`` trims at the next
start. Files rotate by size (``events.jsonl.1`` … ``.N``). The reader walks
the rotated files from the newest line backwards, which is what
``logs tail`` and ``daemon logs`` need when the daemon is down.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from animus.bus.envelope import level_at_least

__all__ = ["EventLog", "to_log_line", "read_tail"]

_DUMPS = orjson.OPT_NON_STR_KEYS
_OPTIONAL = ("workflow_id", "run_id", "phase")  # None in most events: dropped from the line

# (whole second, its formatted prefix), swapped as one reference so that
# threads never pair one second with another's prefix: one strftime a second
_second: list[tuple[int, str]] = [(-1, "")]


def _rfc3339(ts: float) -> str:
    sec = int(ts)
    cached = _second[0]
    if cached[0] != sec:
        cached = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
        _second[0] = cached
    return f"{cached[1]}.{int((ts - sec) * 1e6):06d}Z"


def to_log_line(event: dict[str, Any]) -> bytes:
    """The log form of an event: the envelope with an RFC 3339 ``ts`` and a ``msg``.

    Raises ``TypeError``/``ValueError`` for an event JSON cannot hold (bytes
    map keys, nesting past orjson's limit); callers count it as malformed.
    """
    line = event.copy()
    for key in _OPTIONAL:
        if key in line and line[key] is None:
            del line[key]
    if None in line.values():
        line = {k: v for k, v in line.items() if v is not None}
    line["ts"] = _rfc3339(float(event["ts"]))
    data = event.get("data")
    line["msg"] = str((data.get("message") if type(data) is dict else None) or event["kind"])
    return orjson.dumps(line, option=_DUMPS, default=str) + b"\n"


class EventLog:
    def __init__(self, path: Path, max_bytes: int = 50 * 1024 * 1024, keep: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_bytes = self.repair()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._size = os.fstat(self._fd).st_size

    def repair(self) -> int:
        """Trim a torn last line left by a crash; return the bytes removed."""
        if not self.path.exists():
            return 0
        with open(self.path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            pos = size
            while pos > 0:
                step = min(65536, pos)
                pos -= step
                fh.seek(pos)
                chunk = fh.read(step)
                idx = chunk.rfind(b"\n")
                if idx >= 0:
                    fh.truncate(pos + idx + 1)
                    return size - (pos + idx + 1)
            fh.truncate(0)
            return size

    def write_lines(self, lines: list[bytes]) -> None:
        """Append whole lines; on a write error (disk full) take back any part of the batch."""
        if not lines:
            return
        blob = b"".join(lines)
        view = memoryview(blob)
        start = self._size
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            try:
                os.ftruncate(self._fd, start)  # no torn line left in the middle of the file
            except OSError:
                pass
            raise
        self._size += len(blob)
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        os.close(self._fd)
        try:
            for i in range(self.keep - 1, 0, -1):
                src = self.path.with_name(f"{self.path.name}.{i}")
                if src.exists():
                    os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        finally:  # even when a rename failed: keep a file to write to
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._size = os.fstat(self._fd).st_size

    def close(self) -> None:
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)


def _files(path: Path) -> list[Path]:
    out = [path] if path.exists() else []
    i = 1
    while (rotated := path.with_name(f"{path.name}.{i}")).exists():
        out.append(rotated)
        i += 1
    return out


def _reverse_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest


def read_tail(path: Path, limit: int = 100, level: str | None = None, cat: str | None = None,
              workflow_id: str | None = None, search: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` matching lines, oldest first."""
    found: deque[dict[str, Any]] = deque()
    for file in _files(path):
        for raw in _reverse_lines(file):
            try:
                entry = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if level and not level_at_least(str(entry.get("level", "info")), level):
                continue
            if cat and not str(entry.get("cat", "")).startswith(cat):
                continue
            if workflow_id and entry.get("workflow_id") != workflow_id:
                continue
            if search and search not in raw.decode("utf-8", "replace"):
                continue
            found.appendleft(entry)
            if len(found) >= limit:
                return list(found)
    return list(found)
