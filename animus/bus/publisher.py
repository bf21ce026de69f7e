"""Publishing events on the bus, without silent loss.

A publisher is an XPUB socket connected to the broker's XSUB. XPUB (not
PUB) lets it see the broker's subscription arrive: ``connect`` waits for it,
which beats ZeroMQ's slow-joiner problem with a handshake instead of a
sleep. ``XPUB_NODROP`` makes a full queue push back on the sender instead of
dropping, so the broker's log writer receives every event in order.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import zmq

from animus.bus.codec import pack
from animus.bus.envelope import make_event

__all__ = ["Publisher", "BusUnavailable"]


class BusUnavailable(RuntimeError):
    pass


class Publisher:
    def __init__(self, endpoint: str, src: str, context: zmq.Context[Any] | None = None,
                 hwm: int = 200_000) -> None:
        self.endpoint = endpoint
        self.src = src
        self.seq = 0
        self._ctx = context or zmq.Context.instance()
        self._lock = threading.Lock()  # providers publish from worker threads too
        sock = self._ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.setsockopt(zmq.LINGER, 3000)
        sock.connect(endpoint)
        self._sock = sock
        self._ready = False

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Wait for the broker's subscription (the handshake)."""
        if self._ready:
            return True
        if self._sock.poll(int(timeout * 1000), zmq.POLLIN):
            while self._sock.poll(0, zmq.POLLIN):
                self._sock.recv()
            self._ready = True
        return self._ready

    def publish(
        self,
        cat: str,
        kind: str,
        level: str = "info",
        data: dict[str, Any] | None = None,
        workflow_id: str | None = None,
        run_id: str | None = None,
        phase: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            if not self._ready and not self.wait_ready():
                raise BusUnavailable(f"no bus broker answered at {self.endpoint}")
            self.seq += 1
            event = make_event(self.src, self.seq, time.time(), cat, kind, level, data,
                               workflow_id, run_id, phase)
            self._sock.send_multipart([cat.encode(), pack(event)])
            return event

    def close(self, linger_ms: int = 3000) -> None:
        self._sock.close(linger=linger_ms)


def default_src(role: str, name: str) -> str:
    return f"{role}/{name}:{os.getpid()}"
