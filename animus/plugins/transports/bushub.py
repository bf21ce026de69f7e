"""One bus subscription per transport, fanned out to many streaming clients.

The hub is a SUB socket on the daemon's ``bus.out``. Before it reports
ready it proves its subscription is live the way ``animus daemon stream``
does: it asks for a ``stream_sync`` marker (control ``bus/sync``) until it
sees its own, then takes the broker's watermark that follows as its
baseline. From then on every event reaches every client whose filter keeps
it, and nothing is lost silently:

- a loss between the broker and the hub shows as a jump in a publisher's
  ``seq`` or in a watermark (``SeqTracker``); every client gets a
  ``stream_gap`` event for it, whatever its filter (the lost events might
  have matched it);
- a client that reads too slowly has a bounded queue; what overflows is
  dropped *for that client only* and reported to it, where the loss
  happened, as a ``stream_gap`` with ``src`` = ``client``.

Clients filter like ``animus daemon stream``: workflow id, run id, category
prefix, minimum level.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import zmq
import zmq.asyncio

from animus.bus.codec import CodecError, unpack
from animus.bus.envelope import WATERMARK_KIND, validate_event
from animus.bus.subscriber import HIDDEN_KINDS, EventFilter, Gap, SeqTracker, SyncHandshake

__all__ = ["BusHub", "Subscription", "gap_event"]

QUEUE_SIZE = 10_000


def gap_event(src: str, first: int, last: int) -> dict[str, Any]:
    return {"kind": "stream_gap", "cat": "bus", "level": "warn", "ts": time.time(), "src": src,
            "from_seq": first, "to_seq": last, "missing": last - first + 1}


class Subscription:
    """One client's queue. On overflow it drops a contiguous run of events
    (everything until the client has read what was queued before the loss)
    and then reports that run, in its place, as one ``stream_gap``."""

    def __init__(self, keep: EventFilter, size: int = QUEUE_SIZE) -> None:
        self.keep = keep
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(size)
        self.dropped = 0
        self.delivered = 0

    def offer(self, event: dict[str, Any]) -> None:
        if self.dropped:
            self.dropped += 1
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = 1

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or the report of a run lost to overflow; None on timeout."""
        if self.dropped and self.queue.empty():
            lost, self.dropped = self.dropped, 0
            return gap_event("client", 1, lost) | {"message": f"this client read too slowly: {lost} lost"}
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        self.delivered += 1
        return event


class BusHub:
    def __init__(self, ctx: zmq.asyncio.Context, endpoint: str, control: Any) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        self.control = control
        self.subs: set[Subscription] = set()
        self.ready = asyncio.Event()
        self.tracker = SeqTracker()
        self.events_in = 0
        self.malformed = 0
        self.last_error: str | None = None
        self._sock: Any = None

    def subscribe(self, keep: EventFilter) -> Subscription:
        sub = Subscription(keep)
        self.subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subs.discard(sub)

    def statistics(self) -> dict[str, Any]:
        return {"bus_ready": self.ready.is_set(), "subscribers": len(self.subs), "events_in": self.events_in,
                "gaps": self.tracker.gaps, "missed": self.tracker.missing, "malformed": self.malformed}

    async def run(self) -> None:
        sock = self.ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SUBSCRIBE, b"")  # filter per client so per-publisher seq stays exact
        sock.connect(self.endpoint)
        self._sock = sock
        try:
            while not self.ready.is_set():
                try:
                    await self._sync(sock)
                except Exception as exc:  # daemon busy or restarting: keep trying, say why
                    self.last_error = f"bus subscription not live yet: {exc}"
                    await asyncio.sleep(1.0)
            self.last_error = None
            while True:
                self._dispatch(await sock.recv_multipart())
        finally:
            sock.close(linger=0)

    async def _sync(self, sock: Any) -> None:
        handshake = SyncHandshake()
        post: list[list[bytes]] = []  # after our marker, before the baseline: replayed once it is set
        while True:
            nonce = handshake.nonce_due()
            if nonce is not None:
                await self.control.call("bus/sync", {"nonce": nonce}, timeout=5)
            if handshake.expired():
                self._go_live(post)  # no baseline: the first event of each publisher starts its count
                return
            if not await sock.poll(50):
                continue
            frames = await sock.recv_multipart()
            event = self._decode(frames)
            if event is None:
                continue
            step = handshake.feed(event)
            if step == "live":
                self.tracker = SeqTracker(handshake.baseline)
                self._go_live(post)
                return
            if step == "after":
                post.append(frames)

    def _go_live(self, post: list[list[bytes]]) -> None:
        self.ready.set()
        for frames in post:
            self._dispatch(frames)

    def _decode(self, frames: list[bytes]) -> dict[str, Any] | None:
        if len(frames) != 2:
            self.malformed += 1
            return None
        try:
            return validate_event(unpack(frames[1]))
        except (CodecError, ValueError):
            self.malformed += 1
            return None

    def _dispatch(self, frames: list[bytes]) -> None:
        event = self._decode(frames)
        if event is None:
            return
        self.events_in += 1
        if event["kind"] == WATERMARK_KIND:
            marks = (event.get("data") or {}).get("last_seq")
            if isinstance(marks, dict):
                for gap in self.tracker.watermark(marks):
                    self._broadcast_gap(gap)
            return
        jump = self.tracker.observe(event["src"], event["seq"])
        if jump is not None:
            self._broadcast_gap(jump)
        if event["kind"] in HIDDEN_KINDS:
            return
        for sub in list(self.subs):
            if sub.keep(event):
                sub.offer(event)

    def _broadcast_gap(self, gap: Gap) -> None:
        event = gap_event(gap.src, gap.first, gap.last)
        for sub in list(self.subs):
            sub.offer(event)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(Exception):
                self._sock.close(linger=0)
