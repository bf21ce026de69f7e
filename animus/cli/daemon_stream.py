"""``animus daemon stream``: live bus events, with gap reports.

The subscriber first proves its subscription is live (it asks the daemon to
publish a sync marker and waits to see it), so nothing published after the
command says it is streaming is missed. Every publisher numbers its events;
a jump in ``seq`` is reported as a gap line, never silently dropped.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from typing import Any

import orjson
import zmq

from animus.bus.codec import CodecError, unpack
from animus.bus.envelope import level_at_least, validate_event
from animus.bus.eventlog import read_tail, to_log_line
from animus.cli import context
from animus.cli.output import err
from animus.errors import DAEMON_NOT_RUNNING, Unavailable

__all__ = ["stream_events"]

_COLORS = {"debug": "\033[2m", "info": "\033[0m", "warn": "\033[33m", "error": "\033[31m"}
_TERMINAL = {"workflow_completed", "workflow_failed", "workflow_cancelled"}


def _pretty(event: dict[str, Any], color: bool) -> str:
    ts = event["ts"]
    stamp = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"
    where = "/".join(x for x in (event.get("workflow_id"), event.get("phase")) if x)
    data = event.get("data") or {}
    detail = data.get("message") or data.get("line") or data.get("text") or ""
    if not detail:
        detail = " ".join(f"{k}={v}" for k, v in list(data.items())[:6])
    line = f"{stamp} {event['level']:<5} {event['cat']:<10} {event['kind']:<22} {where} {detail}".rstrip()
    if color:
        return f"{_COLORS.get(event['level'], '')}{line}\033[0m"
    return line


class _Filter:
    def __init__(self, workflow: str | None, run: str | None, cat: str | None, level: str | None) -> None:
        self.workflow, self.run, self.cat, self.level = workflow, run, cat, level

    def __call__(self, event: dict[str, Any]) -> bool:
        if self.workflow and event.get("workflow_id") != self.workflow:
            return False
        if self.run and event.get("run_id") != self.run:
            return False
        if self.cat and not str(event.get("cat", "")).startswith(self.cat):
            return False
        return not (self.level and not level_at_least(str(event.get("level")), self.level))


def stream_events(pretty: bool, workflow: str | None, run: str | None, cat: str | None,
                  level: str | None, tail: int, as_json: bool) -> int:
    scope = context.scope()
    endpoint = scope.endpoint("bus.out")
    if not (scope.run_dir() / "bus.out").exists():
        raise Unavailable(DAEMON_NOT_RUNNING)
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")  # filter locally so per-publisher seq stays exact
    sock.connect(endpoint)
    out = sys.stdout
    color = pretty and out.isatty() and not os.environ.get("NO_COLOR")
    keep = _Filter(workflow, run, cat, level)
    last_seq: dict[str, int] = {}
    printed: set[tuple[str, int]] = set()
    stats = {"events": 0, "gaps": 0, "missing": 0, "malformed": 0}
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    def show(event: dict[str, Any]) -> bool:
        """Print one event; return True when the stream should end."""
        if pretty and not as_json:
            out.write(_pretty(event, color) + "\n")
        else:
            out.write(to_log_line(event).decode())
        stats["events"] += 1
        if event["kind"] == "daemon_shutdown":
            return True
        return bool(workflow) and event["kind"] in _TERMINAL and event.get("workflow_id") == workflow

    def gap(src: str, first: int, last: int) -> None:
        stats["gaps"] += 1
        stats["missing"] += last - first + 1
        record = {"kind": "stream_gap", "cat": "bus", "src": src, "from_seq": first, "to_seq": last,
                  "missing": last - first + 1}
        if pretty and not as_json:
            err(f"gap: {record['missing']} event(s) from {src} missed (seq {first}..{last})")
        else:
            out.write(orjson.dumps(record).decode() + "\n")

    def handle(event: dict[str, Any], live: bool) -> bool:
        src, seq = event["src"], event["seq"]
        if live:
            prev = last_seq.get(src)
            if prev is not None and seq > prev + 1:
                gap(src, prev + 1, seq - 1)
            last_seq[src] = max(seq, prev or 0)
        if (src, seq) in printed:
            return False
        printed.add((src, seq))
        if event["kind"] == "stream_sync" or not keep(event):
            return False
        return show(event)

    nonce = uuid.uuid4().hex
    buffered: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    synced = False
    try:
        while not synced:
            if time.monotonic() > deadline:
                raise Unavailable("could not subscribe to the event bus within 10s", fix="animus daemon status")
            context.call("bus/sync", {"nonce": nonce}, timeout=5)
            poll_until = time.monotonic() + 0.2
            while time.monotonic() < poll_until and not synced:
                if sock.poll(50):
                    event = _decode(sock.recv_multipart(), stats)
                    if event is None:
                        continue
                    if event["kind"] == "stream_sync" and (event.get("data") or {}).get("nonce") == nonce:
                        synced = True
                    buffered.append(event)
        err("streaming events (Ctrl-C to stop)")
        if tail:
            for entry in read_tail(scope.events_log, tail, level, cat, workflow):
                entry_event = {**entry, "ts": time.time()} if not isinstance(entry.get("ts"), (int, float)) else entry
                if handle(_from_log(entry_event), live=False):
                    return 0
        for event in buffered:
            if handle(event, live=True):
                return 0
        out.flush()
        while True:
            if not sock.poll(1000):
                out.flush()
                continue
            event = _decode(sock.recv_multipart(), stats)
            if event is not None and handle(event, live=True):
                break
            if not sock.poll(0):
                out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        out.flush()
        sock.close(linger=0)
        err(f"stream ended: {stats['events']} events, {stats['gaps']} gaps ({stats['missing']} missed), "
            f"{stats['malformed']} malformed")
    return 0


def _decode(frames: list[bytes], stats: dict[str, int]) -> dict[str, Any] | None:
    if len(frames) != 2:
        stats["malformed"] += 1
        return None
    try:
        return validate_event(unpack(frames[1]))
    except (CodecError, ValueError):
        stats["malformed"] += 1
        return None


def _from_log(entry: dict[str, Any]) -> dict[str, Any]:
    """A log line back into an event (ts string → epoch seconds)."""
    event = dict(entry)
    ts = entry.get("ts")
    if isinstance(ts, str):
        try:
            import datetime as dt

            event["ts"] = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            event["ts"] = time.time()
    event.setdefault("data", {})
    event.setdefault("level", "info")
    return event


_ = orjson.loads
