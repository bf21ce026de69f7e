"""What a bus subscriber missed: per-publisher ``seq`` accounting.

Every publisher numbers its events 1, 2, 3 … (``seq``, per ``src``). A
subscriber that lags may lose events at the broker's XPUB; ``SeqTracker``
turns every loss into a ``Gap`` instead of a silence:

- a jump in ``seq`` between two events from one publisher is a gap;
- the broker's ``bus_watermark`` events (see ``animus.bus.broker``) carry
  the last ``seq`` it forwarded per publisher, which reveals a loss at the
  end of a burst, where no later event would;
- the watermark sent right after a subscriber's ``stream_sync`` marker is
  its *baseline*: where each publisher stood when the subscription became
  live, so a publisher that started later is expected from ``seq`` 1.

Without a baseline (the sync watermark never came) the first event seen
from a publisher starts its count, as nothing better is known. A ``seq``
that goes backwards means the publisher restarted under the same name: its
count starts again. ``SeqTracker`` is pure: no sockets, no clock.

``SyncHandshake`` is how a subscriber makes its subscription live (the
slow-joiner problem, solved with a handshake, never a delay): it asks the
daemon to publish a ``stream_sync`` marker with a nonce of its own
(``bus/sync``) until it sees it, then waits for the broker's watermark sent
right after the marker, its baseline. ``EventFilter`` is the one filter
(``--workflow``, ``--run``, ``--cat`` prefix, ``--level`` minimum) that the
CLI's stream, SSE and GraphQL subscriptions apply. Both are pure.

``recv_body`` replaces ``recv_multipart`` in the hot receive loops (log
writer, ``daemon stream``) at about half its cost: pyzmq's version asks for
``RCVMORE`` through a Python-level option lookup on every frame.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import zmq

from animus.bus.envelope import LEVELS, WATERMARK_KIND, level_at_least

__all__ = ["EventFilter", "Gap", "HIDDEN_KINDS", "SeqTracker", "SyncHandshake", "is_watermark", "recv_body"]

HIDDEN_KINDS = frozenset({"stream_sync", WATERMARK_KIND})  # bus plumbing, not events to show
SYNC_TIMEOUT = 10.0  # to see our own marker
BASELINE_TIMEOUT = 3.0  # to see the broker's watermark after it


def is_watermark(event: dict[str, Any]) -> bool:
    return event.get("kind") == WATERMARK_KIND and str(event.get("src", "")).startswith("daemon/bus:")


@dataclass(frozen=True)
class EventFilter:
    workflow: str | None = None
    run: str | None = None
    cat: str | None = None  # a prefix: --cat phase keeps phase and phase.start
    level: str | None = None  # a minimum

    def __post_init__(self) -> None:
        if self.level is not None and self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}")

    def __bool__(self) -> bool:
        return bool(self.workflow or self.run or self.cat or self.level)

    def __call__(self, event: dict[str, Any]) -> bool:
        if self.workflow and event.get("workflow_id") != self.workflow:
            return False
        if self.run and event.get("run_id") != self.run:
            return False
        if self.cat and not str(event.get("cat", "")).startswith(self.cat):
            return False
        return not (self.level and not level_at_least(str(event.get("level")), self.level))


Step = Literal["before", "after", "live"]


class SyncHandshake:
    """Where a new subscription stands; the caller does the I/O.

    Loop: send ``bus/sync`` with ``nonce_due()`` whenever it returns one, and
    ``feed`` every event received. ``before`` = the event came before our
    marker (the caller may keep it as history), ``after`` = after it, not yet
    live (keep it, replay it once live), ``live`` = the baseline watermark
    arrived (``baseline`` is set). ``expired()`` says the baseline never came:
    go live without one. No marker within the sync timeout raises TimeoutError.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, sync_timeout: float = SYNC_TIMEOUT,
                 baseline_timeout: float = BASELINE_TIMEOUT) -> None:
        self.clock = clock
        self.sync_timeout = sync_timeout
        self.baseline_timeout = baseline_timeout
        self.deadline = clock() + sync_timeout
        self.nonces: set[str] = set()
        self.marker: str | None = None
        self.baseline: dict[str, int] | None = None
        self._next_call = 0.0

    def nonce_due(self) -> str | None:
        if self.marker is not None:
            return None
        now = self.clock()
        if now > self.deadline:
            raise TimeoutError(f"no stream_sync marker within {self.sync_timeout:g}s")
        if now < self._next_call:
            return None
        self._next_call = now + 0.2
        nonce = uuid.uuid4().hex
        self.nonces.add(nonce)
        return nonce

    def expired(self) -> bool:
        return self.marker is not None and self.clock() > self.deadline

    def feed(self, event: dict[str, Any]) -> Step:
        data = event.get("data") or {}
        if self.marker is None:
            nonce = data.get("nonce")
            if event.get("kind") == "stream_sync" and isinstance(nonce, str) and nonce in self.nonces:
                self.marker = nonce
                self.deadline = self.clock() + self.baseline_timeout
            return "before"
        marks = data.get("last_seq")
        if is_watermark(event) and data.get("sync") == self.marker and isinstance(marks, dict):
            self.baseline = {s: n for s, n in marks.items() if isinstance(s, str) and type(n) is int}
            return "live"
        return "after"


def recv_body(sock: zmq.Socket[Any], flags: int = zmq.NOBLOCK) -> tuple[int, bytes]:
    """One whole message as (its frame count, its second frame — or its first, when alone).

    An event is ``[topic, body]``; the topic is not needed once received.
    Raises ``zmq.Again`` when nothing is queued (with NOBLOCK).
    """
    frame = sock.recv(flags, copy=False)
    if not frame.more:
        return 1, frame.bytes
    frame = sock.recv(flags, copy=False)  # the rest of a message arrives with its first frame
    body, count = frame.bytes, 2
    while frame.more:
        frame = sock.recv(flags, copy=False)
        count += 1
    return count, body


@dataclass(frozen=True)
class Gap:
    src: str
    first: int
    last: int

    @property
    def missing(self) -> int:
        return self.last - self.first + 1


class SeqTracker:
    def __init__(self, baseline: dict[str, int] | None = None) -> None:
        self.baseline = baseline
        self.last: dict[str, int] = {}
        self.gaps = 0
        self.missing = 0

    def _start(self, src: str) -> int | None:
        if self.baseline is None:
            return None
        return self.baseline.get(src, 0)

    def _gap(self, src: str, first: int, last: int) -> Gap:
        gap = Gap(src, first, last)
        self.gaps += 1
        self.missing += gap.missing
        return gap

    def observe(self, src: str, seq: int) -> Gap | None:
        """Account for one received event; return the gap before it, if any."""
        prev = self.last.get(src)
        if prev is None:
            prev = self._start(src)
            if prev is None:
                self.last[src] = seq
                return None
        self.last[src] = seq
        if seq <= prev:  # a restart under the same src: the count starts again
            return None
        if seq > prev + 1:
            return self._gap(src, prev + 1, seq - 1)
        return None

    def watermark(self, last_seq: dict[str, int]) -> list[Gap]:
        """Account for a broker watermark; return the tail gaps it reveals."""
        gaps = []
        for src, mark in last_seq.items():
            if type(mark) is not int:
                continue
            prev = self.last.get(src)
            if prev is None:
                prev = self._start(src)
                if prev is None:
                    self.last[src] = mark
                    continue
            if mark > prev:
                self.last[src] = mark
                gaps.append(self._gap(src, prev + 1, mark))
        return gaps
