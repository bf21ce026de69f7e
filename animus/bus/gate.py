"""The bus's tcp inputs: an authenticated, checked way in from other hosts.

The broker's own XSUB takes the local publishers over ipc and forwards in
ZeroMQ's C proxy, which cannot judge a message. A publisher on another host
(a Ray runner, an operator's ``bus.tcp`` client) comes in here instead:

- a separate XSUB bound on the tcp endpoints, a CURVE server (only known
  client keys complete the handshake, see ``animus.bus.curve``) with
  ``MAXMSGSIZE`` set, so an oversized frame drops its connection before it
  is buffered;
- one thread that reads each message, checks it (two frames, at most
  ``MAX_EVENT_BYTES``, the v1 envelope, and a ``src`` that belongs to the
  key the connection authenticated with: runners publish as ``runner/…``,
  a client ``<name>`` as ``remote/<name>…``), and forwards what passes into
  the broker's internal input, so it is logged and fanned out like any
  local event;
- a socket monitor that counts refused handshakes and dropped connections.

Everything refused is counted (``bus_events_malformed_total{reason}``,
``bus_events_refused_total{reason=src}``, ``tcp_handshakes_refused_total``,
``bus_tcp_disconnects_total``) and never reaches a subscriber.

Stop: ``stop()`` sets a flag the thread sees within 100 ms, then joins it.
"""

from __future__ import annotations

import threading
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from animus.bus.codec import CodecError, unpack
from animus.bus.curve import BUS_DOMAIN, Gatekeeper, secure_server
from animus.bus.envelope import validate_event
from animus.bus.metrics import Metrics

__all__ = ["TcpGate", "GATE_MAX_BYTES"]

GATE_MAX_BYTES = 1024 * 1024  # the broker's MAX_EVENT_BYTES: nothing bigger is ever logged
_BATCH = 1000
_HANDSHAKE_FAILED = {zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth", zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol",
                     zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "other"}


class TcpGate:
    def __init__(self, ctx: zmq.Context[Any], endpoints: list[str], forward_to: str, keys: tuple[str, str],
                 keeper: Gatekeeper, metrics: Metrics) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.keeper = keeper
        self.bound: list[str] = []
        xsub = ctx.socket(zmq.XSUB)
        xsub.setsockopt(zmq.LINGER, 0)
        xsub.setsockopt(zmq.RCVHWM, 1000)  # bounded: ~1 GiB at most, from authenticated peers only
        xsub.setsockopt(zmq.MAXMSGSIZE, GATE_MAX_BYTES)
        secure_server(xsub, keys, BUS_DOMAIN)
        self._monitor = xsub.get_monitor_socket()
        try:
            for ep in endpoints:
                xsub.bind(ep)
                self.bound.append(xsub.getsockopt_string(zmq.LAST_ENDPOINT))
        except zmq.ZMQError:
            xsub.disable_monitor()
            self._monitor.close(linger=0)
            xsub.close(linger=0)
            raise
        xsub.send(b"\x01")  # subscribe to everything: remote publishers wait for it
        out = ctx.socket(zmq.XPUB)  # a publisher into the broker, like any local one
        out.setsockopt(zmq.XPUB_NODROP, 1)
        out.setsockopt(zmq.LINGER, 0)
        out.setsockopt(zmq.SNDTIMEO, 100)
        out.connect(forward_to)
        self._xsub, self._out = xsub, out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bus-tcp-gate", daemon=True)

    def start(self, timeout: float = 5.0) -> None:
        if self._out.poll(int(timeout * 1000)):  # the broker's subscription: forwarding is live
            self._out.recv()
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        for sock in (self._xsub, self._monitor, self._out):
            poller.register(sock, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(100))
                if self._monitor in ready:
                    self._watch()
                if self._out in ready:
                    while self._out.poll(0):
                        self._out.recv()  # subscription notices from the broker: nothing to do
                if self._xsub in ready:
                    self._drain()
        except zmq.ContextTerminated:
            pass
        finally:
            self._xsub.disable_monitor()
            for sock in (self._monitor, self._xsub, self._out):
                sock.close(linger=0)

    def _watch(self) -> None:
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            if event in _HANDSHAKE_FAILED:
                self.metrics.inc("tcp_handshakes_refused_total", domain=BUS_DOMAIN, reason=_HANDSHAKE_FAILED[event])
            elif event == zmq.EVENT_DISCONNECTED:
                self.metrics.inc("bus_tcp_disconnects_total")

    def _drain(self) -> None:
        for _ in range(_BATCH):
            try:
                first = self._xsub.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            frames = [first]
            while frames[-1].more:
                frames.append(self._xsub.recv(copy=False))
            if self.judge(frames, first.get("User-Id")):
                self._forward([f.bytes for f in frames])

    def judge(self, frames: list[Any], user_id: str | None) -> bool:
        """Whether one received message may go on to the broker (counted when not)."""
        m = self.metrics
        if len(frames) != 2:
            m.inc("bus_events_malformed_total", reason="frames")
            return False
        body = frames[1].bytes
        if len(body) > GATE_MAX_BYTES:
            m.inc("bus_events_malformed_total", reason="oversized")
            return False
        try:
            event = validate_event(unpack(body))
        except (CodecError, ValueError):
            m.inc("bus_events_malformed_total", reason="schema")
            return False
        prefix = self.keeper.src_prefix(user_id)
        if prefix is None or not event["src"].startswith(prefix):
            m.inc("bus_events_refused_total", reason="src")
            return False
        return True

    def _forward(self, frames: list[bytes]) -> None:
        while not self._stop.is_set():
            try:
                self._out.send_multipart(frames)
                return
            except zmq.Again:
                continue  # the broker is behind: wait for it (remote publishers then wait for us)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        else:
            self._run_cleanup()

    def _run_cleanup(self) -> None:
        self._xsub.disable_monitor()
        for sock in (self._monitor, self._xsub, self._out):
            sock.close(linger=0)
