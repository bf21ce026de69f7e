"""The bus broker: XSUB in, XPUB out, and a lossless lane to the event log.

Forwarding runs in ZeroMQ's C proxy (a thread that holds no GIL). Every
message it forwards is also copied to a PUSH capture socket; PUSH blocks when
the log writer falls behind, which pushes back through the broker to the
publishers (they use ``XPUB_NODROP``). So the log writer sees every event, in
order per publisher, and a burst slows senders instead of losing events.
Subscribers on XPUB may still lag and lose events; they see it from ``seq``.

The writer thread decodes and validates each frame: malformed frames (not
msgpack, wrong schema, oversized) are dropped and counted, never fatal.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from animus.bus.codec import CodecError, unpack
from animus.bus.envelope import validate_event
from animus.bus.eventlog import EventLog, to_log_line
from animus.bus.metrics import Metrics

__all__ = ["Broker", "MAX_EVENT_BYTES"]

MAX_EVENT_BYTES = 1024 * 1024
_CAPTURE = "inproc://animus-bus-capture"
_CONTROL = "inproc://animus-bus-control"


class Broker:
    def __init__(
        self,
        ctx: zmq.Context[Any],
        in_endpoints: list[str],
        out_endpoints: list[str],
        log_path: Path,
        metrics: Metrics,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        log_max_bytes: int = 50 * 1024 * 1024,
        log_keep: int = 5,
    ) -> None:
        self.ctx = ctx
        self.in_endpoints = in_endpoints
        self.out_endpoints = out_endpoints
        self.metrics = metrics
        self.on_event = on_event
        self.log = EventLog(log_path, log_max_bytes, log_keep)
        self.bound_in: list[str] = []
        self.bound_out: list[str] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._last_seq: dict[str, int] = {}
        self._proxy = threading.Thread(target=self._run_proxy, name="bus-proxy", daemon=True)
        self._writer = threading.Thread(target=self._run_writer, name="bus-writer", daemon=True)
        self._ctl: zmq.Socket[Any] | None = None

    def start(self) -> None:
        pull = self.ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.RCVHWM, 0)
        pull.bind(_CAPTURE)
        self._pull = pull
        self._ctl = self.ctx.socket(zmq.PAIR)
        self._ctl.bind(_CONTROL)
        self._writer.start()
        self._proxy.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error

    def _run_proxy(self) -> None:
        try:
            xsub = self.ctx.socket(zmq.XSUB)
            xsub.setsockopt(zmq.RCVHWM, 0)
            xpub = self.ctx.socket(zmq.XPUB)
            xpub.setsockopt(zmq.SNDHWM, 100_000)
            capture = self.ctx.socket(zmq.PUSH)
            capture.setsockopt(zmq.SNDHWM, 20_000)
            capture.connect(_CAPTURE)
            ctl = self.ctx.socket(zmq.PAIR)
            ctl.connect(_CONTROL)
            for ep in self.in_endpoints:
                xsub.bind(ep)
                self.bound_in.append(xsub.getsockopt_string(zmq.LAST_ENDPOINT))
            for ep in self.out_endpoints:
                xpub.bind(ep)
                self.bound_out.append(xpub.getsockopt_string(zmq.LAST_ENDPOINT))
            xsub.send(b"\x01")  # subscribe to everything: the log must see all
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, capture, ctl)
        except zmq.ContextTerminated:
            pass
        finally:
            for sock in (xsub, xpub, capture, ctl):
                sock.close(linger=0)

    def _run_writer(self) -> None:
        pull = self._pull
        poller = zmq.Poller()
        poller.register(pull, zmq.POLLIN)
        try:
            while True:
                if not poller.poll(100):
                    if self._stop.is_set():
                        break  # drained, and told to stop
                    continue
                lines: list[bytes] = []
                for _ in range(2000):
                    try:
                        frames = pull.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    line = self._accept(frames)
                    if line is not None:
                        lines.append(line)
                self.log.write_lines(lines)
        except zmq.ContextTerminated:
            pass
        finally:
            pull.close(linger=0)
            self.log.close()

    def _accept(self, frames: list[bytes]) -> bytes | None:
        m = self.metrics
        if len(frames) == 1 and frames[0][:1] in (b"\x00", b"\x01"):
            return None  # a subscription notice passing upstream, not an event
        if len(frames) != 2:
            m.inc("bus_events_malformed_total", reason="frames")
            return None
        if len(frames[1]) > MAX_EVENT_BYTES:
            m.inc("bus_events_malformed_total", reason="oversized")
            return None
        try:
            event = validate_event(unpack(frames[1]))
        except (CodecError, ValueError):
            m.inc("bus_events_malformed_total", reason="schema")
            return None
        m.inc("bus_events_total")
        src, seq = event["src"], event["seq"]
        last = self._last_seq.get(src)
        if last is not None and seq != last + 1:
            m.inc("bus_gaps_total")
            m.inc("bus_events_missing_total", max(seq - last - 1, 0))
        self._last_seq[src] = seq
        m.count_event(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                m.inc("bus_event_hook_errors_total")
        return to_log_line(event)

    def last_seq(self, src: str) -> int:
        """The last sequence number the log writer has seen from ``src``."""
        return self._last_seq.get(src, 0)

    def statistics(self) -> dict[str, int]:
        """Messages and bytes through the proxy (ZeroMQ's STATISTICS)."""
        if self._ctl is None:
            return {}
        self._ctl.send(b"STATISTICS")
        if not self._ctl.poll(1000):
            return {}
        frames = self._ctl.recv_multipart()
        values = [struct.unpack("=Q", f)[0] for f in frames]
        names = ("in_msgs", "in_bytes", "out_msgs", "out_bytes",
                 "sub_in_msgs", "sub_in_bytes", "sub_out_msgs", "sub_out_bytes")
        return dict(zip(names, values))

    def stop(self) -> None:
        if self._ctl is not None:
            self._ctl.send(b"TERMINATE")
            self._proxy.join(5)
            self._ctl.close(linger=0)
            self._ctl = None
        # drain what the proxy already captured, then stop the writer
        self._stop.set()
        self._writer.join(5)
