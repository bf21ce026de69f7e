"""``animus daemon stream``: live bus events, with gap reports.

The subscriber first proves its subscription is live: it asks the daemon to
publish a sync marker (control method ``bus/sync``) and waits to see it, so
nothing published after the command says "streaming events" is missed
unnoticed. The broker answers the marker with a watermark (where every
publisher stood at that moment) and repeats watermarks every second while
publishers are active; with the per-publisher ``seq`` of every event that
lets ``SeqTracker`` report each lost event as a gap — in the middle of a
burst, at its end, or at the start of a new publisher — never silently.

With ``--json`` every event is one line in the ``events.jsonl`` form and a
gap is ``{"kind":"stream_gap","src":…,"from_seq":…,"to_seq":…,"missing":N}``;
with ``--pretty`` gaps go to stderr. SIGTERM and Ctrl-C end the stream with
a summary line on stderr.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import zmq

from animus.bus.codec import CodecError, unpack
from animus.bus.envelope import WATERMARK_KIND, validate_event
from animus.bus.eventlog import read_tail, to_log_line
from animus.bus.subscriber import HIDDEN_KINDS, EventFilter, Gap, SeqTracker, SyncHandshake, is_watermark, recv_body
from animus.cli import context
from animus.cli.output import err
from animus.errors import DAEMON_NOT_RUNNING, Unavailable

__all__ = ["stream_events"]

_COLORS = {"debug": "\033[2m", "info": "\033[0m", "warn": "\033[33m", "error": "\033[31m"}
_TERMINAL = {"workflow_completed", "workflow_failed", "workflow_cancelled"}
_BATCH = 1000


def _pretty(event: dict[str, Any], color: bool) -> str:
    ts = event["ts"]
    stamp = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"
    where = "/".join(x for x in (event.get("workflow_id"), event.get("phase")) if isinstance(x, str) and x)
    data = event.get("data") or {}
    detail = data.get("message") or data.get("line") or data.get("text") or ""
    if not detail:
        detail = " ".join(f"{k}={v}" for k, v in list(data.items())[:6])
    line = f"{stamp} {event['level']:<5} {event['cat']:<10} {event['kind']:<22} {where} {detail}".rstrip()
    if color:
        return f"{_COLORS.get(event['level'], '')}{line}\033[0m"
    return line


class _Output:
    """Buffered stdout: one write per batch of events (JSON lines as bytes)."""

    def __init__(self, pretty: bool) -> None:
        self.pretty = pretty
        self.color = pretty and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.pending: list[bytes] = []
        self.render: Callable[[dict[str, Any]], bytes] = self._pretty_line if pretty else to_log_line

    def _pretty_line(self, event: dict[str, Any]) -> bytes:
        return (_pretty(event, self.color) + "\n").encode()

    def gap(self, gap: Gap) -> None:
        if self.pretty:
            self.flush()
            err(f"gap: {gap.missing} event(s) from {gap.src} missed (seq {gap.first}..{gap.last})")
            return
        self.pending.append(orjson.dumps({"kind": "stream_gap", "cat": "bus", "src": gap.src,
                                          "from_seq": gap.first, "to_seq": gap.last,
                                          "missing": gap.missing}) + b"\n")

    def flush(self) -> None:
        stdout = sys.stdout
        if self.pending:
            blob = b"".join(self.pending)
            self.pending.clear()
            if hasattr(stdout, "buffer"):
                stdout.flush()
                stdout.buffer.write(blob)
            else:  # a text-only stdout (some test runners)
                stdout.write(blob.decode())
        stdout.flush()
        if hasattr(stdout, "buffer"):
            stdout.buffer.flush()


class _View:
    """Decides what to print, and when the stream is over."""

    def __init__(self, out: _Output, keep: EventFilter | None, workflow: str | None,
                 tracker: SeqTracker) -> None:
        self.out, self.keep, self.workflow, self.tracker = out, keep, workflow, tracker
        self.printed: dict[str, int] = {}  # src -> seq already shown from the log or pre-sync
        self.events = 0
        self.malformed = 0

    def past(self, event: dict[str, Any]) -> bool:
        """An event from before the subscription was live (log tail, early arrivals)."""
        src, seq = event.get("src"), event.get("seq")
        if isinstance(src, str) and isinstance(seq, int):
            if seq <= self.printed.get(src, -1):
                return False
            self.printed[src] = seq
        return self._print(event)

    def live(self, events: list[dict[str, Any]]) -> bool:
        """Account for and print a batch of live events; True when the stream should end.

        The hot loop of the command (one pass per event, nothing dispatched
        that the common case does not need): a subscriber slower than the
        bus is one that loses events.
        """
        tracker, last, printed = self.tracker, self.tracker.last, self.printed
        keep, render, pending, workflow = self.keep, self.out.render, self.out.pending, self.workflow
        for event in events:
            kind, src, seq = event["kind"], event["src"], event["seq"]
            if kind == WATERMARK_KIND and is_watermark(event):
                marks = (event.get("data") or {}).get("last_seq")
                if isinstance(marks, dict):
                    for gap in tracker.watermark(marks):
                        self.out.gap(gap)
                continue
            prev = last.get(src)
            if prev is not None and seq == prev + 1:
                last[src] = seq  # the common case, inline
            else:
                jump = tracker.observe(src, seq)
                if jump is not None:
                    self.out.gap(jump)
            if printed and src in printed:  # overlap with what --tail printed: skip it once
                if seq <= printed[src]:
                    continue
                del printed[src]
            if kind in HIDDEN_KINDS or (keep is not None and not keep(event)):
                continue
            try:
                pending.append(render(event))
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError, OSError):
                self.malformed += 1  # nothing JSON or a terminal can show: count it, go on
                continue
            self.events += 1
            if kind == "daemon_shutdown" or (workflow and kind in _TERMINAL
                                             and event.get("workflow_id") == workflow):
                return True
        return False

    def _print(self, event: dict[str, Any]) -> bool:
        kind = event.get("kind")
        if kind in HIDDEN_KINDS or (self.keep is not None and not self.keep(event)):
            return False
        try:
            self.out.pending.append(self.out.render(event))
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, OSError):
            self.malformed += 1
            return False
        self.events += 1
        return kind == "daemon_shutdown" or self._workflow_ended(event)

    def _workflow_ended(self, event: dict[str, Any]) -> bool:
        return (bool(self.workflow) and event.get("kind") in _TERMINAL
                and event.get("workflow_id") == self.workflow)


Events = list[dict[str, Any]]


def _subscribe(sock: zmq.Socket[Any], stats: dict[str, int]) -> tuple[Events, Events, dict[str, int] | None]:
    """Make the subscription live (``SyncHandshake``): return the events that arrived
    before our sync marker, those after it, and the baseline (None if it never came)."""
    handshake = SyncHandshake()
    pre: Events = []
    post: Events = []
    while True:
        try:
            nonce = handshake.nonce_due()
        except TimeoutError:
            raise Unavailable(f"could not subscribe to the event bus within {handshake.sync_timeout:g}s",
                              fix="animus daemon status") from None
        if nonce is not None:
            context.call("bus/sync", {"nonce": nonce}, timeout=5)
        if handshake.expired():
            return pre, post, None
        if not sock.poll(50):
            continue
        for event in _receive(sock, stats):
            step = handshake.feed(event)
            if step == "live":
                return pre, post, handshake.baseline
            (pre if step == "before" else post).append(event)


def _receive(sock: zmq.Socket[Any], stats: dict[str, int]) -> list[dict[str, Any]]:
    """Everything queued now (up to a batch), decoded; malformed frames counted."""
    events = []
    for _ in range(_BATCH):
        try:
            count, body = recv_body(sock)
        except zmq.Again:
            break
        try:
            if count != 2:
                raise ValueError("an event is two frames")
            events.append(validate_event(unpack(body)))
        except (CodecError, ValueError):
            stats["malformed"] += 1
    return events


def stream_events(pretty: bool, workflow: str | None, run: str | None, cat: str | None,
                  level: str | None, tail: int, as_json: bool) -> int:
    scope = context.scope()
    endpoint = scope.endpoint("bus.out")
    if not (scope.run_dir() / "bus.out").exists():
        raise Unavailable(DAEMON_NOT_RUNNING)
    sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")  # filter locally so per-publisher seq stays exact
    sock.connect(endpoint)
    out = _Output(pretty and not as_json)
    stats = {"malformed": 0}
    view: _View | None = None
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        pre, post, baseline = _subscribe(sock, stats)
        keep = EventFilter(workflow, run, cat, level) or None
        view = _View(out, keep, workflow, SeqTracker(baseline))
        err("streaming events (Ctrl-C to stop)")
        if tail:
            for entry in read_tail(scope.events_log, tail, level, cat, workflow):
                if view.past(_from_log(entry)):
                    return 0
        for event in pre:
            if view.past(event):
                return 0
        if view.live(post):
            return 0
        out.flush()
        while True:
            if not sock.poll(1000):
                continue
            if view.live(_receive(sock, stats)):
                return 0
            out.flush()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # `animus daemon stream --json | head`: the reader left
        _silence_stdout()
    finally:
        try:
            out.flush()
        except BrokenPipeError:
            _silence_stdout()
        sock.close(linger=0)
        if view is not None:
            err(f"stream ended: {view.events} events, {view.tracker.gaps} gaps "
                f"({view.tracker.missing} missed), {stats['malformed'] + view.malformed} malformed")
    return 0


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
    elif not isinstance(ts, (int, float)):
        event["ts"] = time.time()
    event.setdefault("data", {})
    event.setdefault("level", "info")
    event.setdefault("kind", "event")
    event.setdefault("cat", "")
    return event
