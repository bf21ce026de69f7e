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

``recv_body`` replaces ``recv_multipart`` in the hot receive loops (log
writer, ``daemon stream``) at about half its cost: pyzmq's version asks for
``RCVMORE`` through a Python-level option lookup on every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import zmq

__all__ = ["Gap", "SeqTracker", "recv_body"]


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
