"""Server-sent events from the bus: what one ``GET …/events`` client receives.

The stream is the hub subscription of one client: with ``tail=N`` it first
replays the last N matching events from the daemon's log (``daemon/logs``;
the subscription is taken *before* the log is read, and live events already
replayed are skipped by ``(src, seq)``), then a ``stream_ready`` marker, then
live events. Each event is one ``data:`` line of JSON in the bus envelope
shape (``ts`` in epoch seconds) with ``id: <src>#<seq>``; loss shows up as
``stream_gap`` events; a comment every 15 s keeps proxies from closing an
idle stream.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from animus.bus.subscriber import EventFilter
from animus.plugins.transports.link import DaemonLink

__all__ = ["event_stream", "encode", "from_log"]

KEEPALIVE_SECS = 15.0


def encode(event: dict[str, Any]) -> bytes:
    head = b""
    if isinstance(event.get("src"), str) and isinstance(event.get("seq"), int):
        head = f"id: {event['src']}#{event['seq']}\n".encode()
    return head + b"data: " + orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n\n"


def from_log(entry: dict[str, Any]) -> dict[str, Any]:
    """A ``logs/events.jsonl`` line back into the bus envelope (epoch ``ts``, no ``msg``)."""
    event = {k: v for k, v in entry.items() if k != "msg"}
    ts = entry.get("ts")
    if isinstance(ts, str):
        try:
            event["ts"] = dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            event["ts"] = time.time()
    event.setdefault("data", {})
    return event


async def event_stream(link: DaemonLink, keep: EventFilter, tail: int) -> AsyncIterator[bytes]:
    hub = link.hub
    assert hub is not None
    sub = hub.subscribe(keep)
    try:
        yield b"retry: 2000\n\n"
        shown: dict[str, int] = {}
        replayed = 0
        if tail:
            rows = await link.call("daemon/logs", {"limit": tail, "level": keep.level, "cat": keep.cat,
                                                   "workflow_id": keep.workflow}, timeout=15)
            for row in rows:
                event = from_log(row)
                if not keep(event):
                    continue
                src, seq = event.get("src"), event.get("seq")
                if isinstance(src, str) and isinstance(seq, int):
                    shown[src] = max(seq, shown.get(src, 0))
                replayed += 1
                yield encode(event)
        yield encode({"kind": "stream_ready", "cat": "bus", "level": "info", "ts": time.time(),
                      "data": {"replayed": replayed, "filter": {
                          "workflow": keep.workflow, "run": keep.run, "cat": keep.cat, "level": keep.level}}})
        while True:
            live = await sub.get(KEEPALIVE_SECS)
            if live is None:
                yield b": keepalive\n\n"
                continue
            src, seq = live.get("src"), live.get("seq")
            if shown and isinstance(src, str) and isinstance(seq, int) and seq <= shown.get(src, -1):
                continue  # already replayed from the log
            yield encode(live)
    finally:
        hub.unsubscribe(sub)
