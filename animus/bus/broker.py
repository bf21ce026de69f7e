"""The bus broker: XSUB in, XPUB out, and a lossless lane to the event log.

Forwarding runs in ZeroMQ's C proxy (a thread that holds no GIL). Every
message it forwards is also copied to a PUSH capture socket; PUSH blocks when
the log writer falls behind, the proxy stops reading, XSUB's bounded queue
fills and the publishers' sends block (they use ``XPUB_NODROP``). So the log
writer sees every event, in order per publisher, and a burst slows senders
instead of losing events.

Subscribers on XPUB may still lag and lose events; they see it from ``seq``.
A loss at the *end* of a burst has no later event to reveal it, so the writer
also publishes ``bus_watermark`` events (cat ``bus``, level debug, never
logged): every second, the last ``seq`` it has seen from each publisher
active in the last minute, and right after each ``stream_sync`` marker, the
``seq`` of every publisher as of that marker (``data.sync`` = its nonce), so
a new subscriber knows where each publisher stood when it joined. A
watermark leaves the broker after every event it counts (the proxy forwards
in order), so "watermark says 7, I have 5" is a gap of 6..7 — see
``animus.bus.subscriber``.

The writer thread decodes and validates each frame: malformed frames (not
msgpack, wrong schema, oversized, not JSON-encodable) are dropped and
counted, never fatal. A failing disk is counted too: the writer must keep
draining, or the whole bus would stall behind it.

Stop: ``stop()`` terminates the proxy, then the writer drains what was
captured and closes the log (fsync); both take well under a second. An
event reaches ``events.jsonl`` within a few milliseconds (the writer batches).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from animus.bus.codec import MAX_FRAME_BYTES, CodecError, pack, unpack
from animus.bus.envelope import WATERMARK_KIND, make_event, validate_event
from animus.bus.eventlog import EventLog, to_log_line
from animus.bus.metrics import Metrics
from animus.bus.subscriber import recv_body

__all__ = ["MAX_EVENT_BYTES", "WATERMARK_KIND", "Broker"]

MAX_EVENT_BYTES = 1024 * 1024
WATERMARK_WINDOW = 60.0  # seconds a quiet publisher stays in the periodic watermark
MAX_TRACKED_SRCS = 10_000
_BATCH = 2000
# After a batch that emptied the queue, let events gather this long: at low
# rates the writer then wakes ~200 times a second instead of once per event,
# which keeps it off the CPUs the events' subscribers need (p99 latency).
_LINGER = 0.005


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
        watermark_interval: float = 1.0,
    ) -> None:
        self.ctx = ctx
        self.in_endpoints = in_endpoints
        self.out_endpoints = out_endpoints
        self.metrics = metrics
        self.on_event = on_event
        self.log = EventLog(log_path, log_max_bytes, log_keep)
        self.watermark_interval = watermark_interval
        self.src = f"daemon/bus:{os.getpid()}"
        tag = f"{os.getpid()}-{id(self):x}"  # several brokers may share a process (tests)
        self._capture_ep = f"inproc://animus-bus-capture-{tag}"
        self._control_ep = f"inproc://animus-bus-control-{tag}"
        self._internal_ep = f"inproc://animus-bus-internal-{tag}"
        self.bound_in: list[str] = []
        self.bound_out: list[str] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._last_seq: dict[str, int] = {}
        self._active: dict[str, float] = {}  # src -> monotonic time of its last event
        self._mark_seq = 0
        self._proxy = threading.Thread(target=self._run_proxy, name="bus-proxy", daemon=True)
        self._writer = threading.Thread(target=self._run_writer, name="bus-writer", daemon=True)
        self._ctl: zmq.Socket[Any] | None = None
        self._ctl_lock = threading.Lock()  # the control PAIR is used from executor threads

    @property
    def internal_endpoint(self) -> str:
        """An inproc input of the broker, for in-process publishers (the tcp gate, watermarks)."""
        return self._internal_ep

    def start(self) -> None:
        pull = self.ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.RCVHWM, 20_000)  # finite, or the inproc pipe is unbounded (no push-back)
        pull.bind(self._capture_ep)
        self._pull = pull
        self._ctl = self.ctx.socket(zmq.PAIR)
        self._ctl.bind(self._control_ep)
        self._proxy.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        self._writer.start()

    def _run_proxy(self) -> None:
        try:
            xsub = self.ctx.socket(zmq.XSUB)
            xsub.setsockopt(zmq.RCVHWM, 50_000)  # bounded: a slow writer pushes back
            xsub.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)  # a bigger frame drops its connection unread
            xpub = self.ctx.socket(zmq.XPUB)
            xpub.setsockopt(zmq.SNDHWM, 100_000)
            xpub.setsockopt(zmq.MAXMSGSIZE, 64 * 1024)  # subscribers send only subscriptions
            capture = self.ctx.socket(zmq.PUSH)
            capture.setsockopt(zmq.SNDHWM, 20_000)
            capture.connect(self._capture_ep)
            ctl = self.ctx.socket(zmq.PAIR)
            ctl.connect(self._control_ep)
            for ep in self.in_endpoints:
                xsub.bind(ep)
                self.bound_in.append(xsub.getsockopt_string(zmq.LAST_ENDPOINT))
            xsub.bind(self._internal_ep)
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

    # -- the log writer --------------------------------------------------------
    def _run_writer(self) -> None:
        pull = self._pull
        marks = self.ctx.socket(zmq.XPUB)  # the broker's own publisher, for watermarks
        marks.setsockopt(zmq.XPUB_NODROP, 1)
        marks.setsockopt(zmq.LINGER, 0)
        marks.connect(self._internal_ep)
        next_mark = time.monotonic() + self.watermark_interval
        try:
            while True:
                wait_ms = max(0, int((next_mark - time.monotonic()) * 1000))
                if pull.poll(min(wait_ms, 100)):
                    syncs, full = self._drain(pull)
                    for nonce, snapshot in syncs:
                        self._send_watermark(marks, snapshot, nonce)
                    if not full:
                        self._stop.wait(_LINGER)
                elif self._stop.is_set():
                    break  # drained, and told to stop
                if time.monotonic() >= next_mark:
                    self._send_watermark(marks, self._recent(), None)
                    next_mark = time.monotonic() + self.watermark_interval
        except zmq.ContextTerminated:
            pass
        finally:
            marks.close(linger=0)
            pull.close(linger=0)
            self.log.close()

    def _drain(self, pull: zmq.Socket[Any]) -> tuple[list[tuple[str, dict[str, int]]], bool]:
        """Log one batch; return the (nonce, snapshot) of each sync marker in it, and
        whether the batch was full (more may be waiting)."""
        m = self.metrics
        events: list[dict[str, Any]] = []
        lines: list[bytes] = []
        syncs: list[tuple[str, dict[str, int]]] = []
        last_seq, active, now = self._last_seq, self._active, time.monotonic()
        full = True
        for _ in range(_BATCH):
            try:
                count, body = recv_body(pull)
            except zmq.Again:
                full = False
                break
            event = self._accept(count, body)
            if event is None:
                continue
            try:
                line = to_log_line(event)
            except (TypeError, ValueError):
                m.inc("bus_events_malformed_total", reason="encode")
                continue
            src, seq = event["src"], event["seq"]
            last = last_seq.get(src)
            if last is not None and seq != last + 1:
                m.inc("bus_gaps_total")
                m.inc("bus_events_missing_total", max(seq - last - 1, 0))
            last_seq[src] = seq
            active[src] = now
            if event["kind"] == "stream_sync" and event["cat"] == "bus":
                syncs.append((str((event.get("data") or {}).get("nonce")), dict(last_seq)))
            events.append(event)
            lines.append(line)
        if not events:
            return syncs, full
        try:
            self.log.write_lines(lines)
        except OSError as exc:  # a full or failing disk: count, keep the bus moving
            m.inc("bus_log_write_errors_total", errno=str(exc.errno))
        m.inc("bus_events_total", len(events))
        m.count_events(events)
        if self.on_event is not None:
            for event in events:
                try:
                    self.on_event(event)
                except Exception:
                    m.inc("bus_event_hook_errors_total")
        if len(last_seq) > MAX_TRACKED_SRCS:
            self._forget_oldest()
        return syncs, full

    def _accept(self, count: int, body: bytes) -> dict[str, Any] | None:
        """The event in a captured ``[topic, body]`` message, or None (counted if malformed)."""
        m = self.metrics
        if count == 1 and body[:1] in (b"\x00", b"\x01"):
            return None  # a subscription notice passing upstream, not an event
        if count != 2:
            m.inc("bus_events_malformed_total", reason="frames")
            return None
        if len(body) > MAX_EVENT_BYTES:
            m.inc("bus_events_malformed_total", reason="oversized")
            return None
        try:
            event = validate_event(unpack(body))
        except (CodecError, ValueError):
            m.inc("bus_events_malformed_total", reason="schema")
            return None
        if event["src"] == self.src:
            return None  # our own watermark coming round: not an event to log
        return event

    # -- watermarks ------------------------------------------------------------
    def _recent(self) -> dict[str, int]:
        horizon = time.monotonic() - WATERMARK_WINDOW
        return {src: self._last_seq[src] for src, at in self._active.items() if at >= horizon}

    def _send_watermark(self, sock: zmq.Socket[Any], last_seq: dict[str, int], nonce: str | None) -> None:
        if not last_seq and nonce is None:
            return
        if sock.poll(0, zmq.POLLIN):  # the XSUB's subscription: drain it
            while sock.poll(0, zmq.POLLIN):
                sock.recv()
        event = make_event(self.src, self._mark_seq + 1, time.time(), "bus", WATERMARK_KIND, "debug",
                           {"last_seq": last_seq, "sync": nonce})
        try:
            # never block: the proxy may itself be waiting on this thread
            sock.send_multipart([b"bus", pack(event)], zmq.NOBLOCK)
        except zmq.Again:
            self.metrics.inc("bus_watermarks_skipped_total")
            return
        self._mark_seq += 1

    def _forget_oldest(self) -> None:
        by_age = sorted(self._active.items(), key=lambda item: item[1])
        for src, _ in by_age[: len(by_age) - MAX_TRACKED_SRCS]:
            self._active.pop(src, None)
            self._last_seq.pop(src, None)

    # -- queries ---------------------------------------------------------------
    def last_seq(self, src: str) -> int:
        """The last sequence number the log writer has seen from ``src``."""
        return self._last_seq.get(src, 0)

    def statistics(self) -> dict[str, int]:
        """Messages and bytes through the proxy (ZeroMQ's STATISTICS)."""
        with self._ctl_lock:
            ctl = self._ctl
            if ctl is None:
                return {}
            while ctl.poll(0):  # a late answer to an earlier call that timed out
                ctl.recv_multipart()
            ctl.send(b"STATISTICS")
            if not ctl.poll(1000):
                return {}
            frames = ctl.recv_multipart()
        values = [struct.unpack("=Q", f)[0] for f in frames]
        # frames, not messages; "up" is subscriptions going upstream to publishers
        names = ("in_frames", "in_bytes", "up_frames", "up_bytes",
                 "sub_frames", "sub_bytes", "out_frames", "out_bytes")
        return dict(zip(names, values))

    def stop(self) -> None:
        with self._ctl_lock:
            if self._ctl is not None:
                self._ctl.send(b"TERMINATE")
                self._proxy.join(5)
                self._ctl.close(linger=0)
                self._ctl = None
        # drain what the proxy already captured, then stop the writer
        self._stop.set()
        self._writer.join(5)
