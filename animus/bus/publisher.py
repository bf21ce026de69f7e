"""Publishing events on the bus, without silent loss.

A publisher is an XPUB socket connected to the broker's XSUB. XPUB (not
PUB) lets it see the broker's subscription arrive: ``connect`` waits for it,
which beats ZeroMQ's slow-joiner problem with a handshake instead of a
sleep. ``XPUB_NODROP`` makes a full queue push back on the sender instead of
dropping, so the broker's log writer receives every event in order: when the
broker falls behind, ``publish`` blocks until it catches up.

``close()`` is where the last events are delivered: ZeroMQ sends what is
still queued only while its context terminates, and a process that exits
without terminating it drops that queue. So a publisher made without a
``context`` owns a private one and ``close()`` terminates it, waiting up to
``linger_ms`` for the queue to reach the broker. A caller that passes a
context must terminate it before exiting, for the same reason.

``light=True`` (a workflow runner: one short process per run) speaks ZMTP
itself over an ``ipc://`` endpoint (``animus.bus.zmtp.PubSocket``): the same
handshake, blocking sends, no context or I/O thread to start and tear down.
A ``tcp://`` endpoint (CURVE) always goes through libzmq.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from animus.bus.codec import new_packer
from animus.redact import active
from animus.bus.envelope import make_event
from animus.bus.zmtp import PubSocket, ZmtpError

if TYPE_CHECKING:  # pyzmq is imported by the publishers that use it: a light one never does
    import zmq

    from animus.bus.curve import ClientKeys

__all__ = ["Publisher", "BusUnavailable"]


class BusUnavailable(RuntimeError):
    pass


class Publisher:
    def __init__(self, endpoint: str, src: str, context: zmq.Context[Any] | None = None,
                 hwm: int = 200_000, curve: ClientKeys | None = None, light: bool = False) -> None:
        self.endpoint = endpoint
        self.src = src
        self.seq = 0
        self._lock = threading.Lock()  # providers publish from worker threads too
        self._pack = new_packer()  # used under the lock only
        self._ready = False
        self._redact = active()
        self._light: PubSocket | None = None
        self._light_path = ""
        self._owns_ctx = False
        if light and endpoint.startswith("ipc://") and context is None and curve is None:
            self._light_path = endpoint.removeprefix("ipc://")
            try:  # connected now and our half of the handshake sent: the broker answers while we go on
                self._light = PubSocket(self._light_path, 5.0, answer=False)
            except (OSError, ZmtpError):
                self._light = None  # not there yet (a restarting daemon): wait_ready retries, as libzmq would
            return
        import zmq

        from animus.bus.curve import secure_client

        self._poll_in, self._send_more = zmq.POLLIN, zmq.SNDMORE
        self._owns_ctx = context is None
        self._ctx = context if context is not None else zmq.Context()
        sock = self._ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.setsockopt(zmq.XPUB_NODROP, 1)
        sock.setsockopt(zmq.LINGER, 3000)
        secure_client(sock, endpoint, curve)  # tcp:// only: the daemon's CURVE keys (a remote runner)
        sock.connect(endpoint)
        self._sock = sock

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Wait for the broker's subscription (the handshake)."""
        if self._ready:
            return True
        if self._light_path:
            self._ready = self._connect_light(time.monotonic() + timeout)
            return self._ready
        if self._sock.poll(int(timeout * 1000), self._poll_in):
            while self._sock.poll(0, self._poll_in):
                self._sock.recv()
            self._ready = True
        return self._ready

    def _connect_light(self, deadline: float) -> bool:
        """Connect and wait for the broker's subscription, retrying (like libzmq's reconnect) while
        the broker is not there yet: a runner may start while a restarting daemon binds its bus."""
        while True:
            try:
                if self._light is None:
                    self._light = PubSocket(self._light_path, max(deadline - time.monotonic(), 0.05))
                return self._light.wait_subscribed(max(deadline - time.monotonic(), 0.0))
            except (OSError, ZmtpError):
                if self._light is not None:
                    self._light.close()
                    self._light = None
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)

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
            seq = self.seq + 1
            if self._redact:
                data = self._redact.value(data)  # secret values never reach the bus
            event = make_event(self.src, seq, time.time(), cat, kind, level, data,
                               workflow_id, run_id, phase)
            body = self._pack(event)  # may raise (data msgpack cannot hold): no seq used up
            if self._light is not None:
                try:
                    self._light.send_event(cat.encode(), body)
                except OSError as exc:
                    raise BusUnavailable(f"the bus broker at {self.endpoint} went away: {exc}") from None
            else:
                self._sock.send(cat.encode(), self._send_more)
                self._sock.send(body)
            self.seq = seq
            return event

    def close(self, linger_ms: int = 3000) -> None:
        """Close; with a private context, wait up to ``linger_ms`` for queued events to leave."""
        with self._lock:
            if self._light_path:
                if self._light is not None:
                    self._light.close()  # what was sent is in the kernel's buffer, the broker's to read
                return
            self._sock.close(linger=linger_ms)
            if self._owns_ctx:
                self._ctx.term()


def default_src(role: str, name: str) -> str:
    return f"{role}/{name}:{os.getpid()}"
