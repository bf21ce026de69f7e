"""The plugin host: one ROUTER per role supervisor, many plugin DEALERs.

A single reader owns the socket; requests get ids and futures, replies are
matched by id (never read inline). A plugin counts as started once the
handshake is done (``$/ready`` → ``initialize`` → ``initialized``). A
heartbeat pings every running plugin; one that stops answering is killed so
that its supervisor restarts it under the restart budget.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from animus import __version__
from animus.bus.codec import MAX_FRAME_BYTES, CodecError, pack, unpack
from animus.bus.pending import Pending
from animus.errors import Unavailable
from animus.plugin_runtime import protocol as p

__all__ = ["PluginHost", "PluginCallError", "PluginProtocolError"]

HANDSHAKE_TIMEOUT = float(os.environ.get("ANIMUS_HANDSHAKE_TIMEOUT", "5"))
PING_INTERVAL = float(os.environ.get("ANIMUS_PING_INTERVAL", "2"))
PING_MISSES = 3
# A plugin's last replies and its exit race to the host's event loop (the exit may be
# handled first in the very iteration that brings the replies): what it still owes
# fails this long after its exit, unless answered in the meantime.
REPLY_GRACE = 0.5


class PluginCallError(Exception):
    """A JSON-RPC error a plugin returned."""

    def __init__(self, plugin: str, err: dict[str, Any]) -> None:
        self.plugin = plugin
        self.code = int(err.get("code", p.INTERNAL_ERROR))
        self.message = str(err.get("message", "error"))
        self.data = err.get("data")
        super().__init__(f"{plugin}: {self.message} (code {self.code})")


class PluginProtocolError(Unavailable):
    """The plugin broke the wire protocol (a frame that is not a msgpack map)."""


class PluginGone(Unavailable):
    """The plugin's socket is gone (it disconnected, most likely it exited)."""


class PluginHost:
    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoint: str,
        on_ready: Callable[[str, int, dict[str, Any]], bool],
        on_failed: Callable[[str, str], None],
        emit: Callable[[str, str, dict[str, Any]], None],
        configs: dict[str, dict[str, Any]] | None = None,
        on_notification: Callable[[str, str, dict[str, Any]], None] | None = None,
        handshake_timeout: float | None = None,
        on_connect: Callable[[str, int], None] | None = None,
    ) -> None:
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self.sock.bind(endpoint)
        self.endpoint = endpoint
        self.on_ready = on_ready
        self.on_failed = on_failed
        self.emit = emit
        self.configs = configs or {}
        self.on_notification = on_notification
        self.handshake_timeout = HANDSHAKE_TIMEOUT if handshake_timeout is None else handshake_timeout
        self.on_connect = on_connect
        self.peers: dict[str, tuple[bytes, int]] = {}  # child id -> (routing id, pid)
        self.info: dict[str, dict[str, Any]] = {}
        self.ready: set[str] = set()
        self.misses: dict[str, int] = {}
        self.pinged: dict[str, tuple[float, int, dict[str, Any]]] = {}  # child -> (when, pid, health in its pong)
        self._pending = Pending()
        self._leaving: set[tuple[str, int]] = set()  # exited processes whose last replies may still come
        self._tasks: set[asyncio.Task[Any]] = set()
        self.malformed = 0
        self.dropped = 0  # frames from no connected plugin: counted, reported as plugin_frames_dropped
        self._dropped_said = 0.0
        self._dropped_reported = 0
        self._drop_reason = ""

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for coro in (self._read(), self._heartbeat()):
            task = loop.create_task(coro)
            self._tasks.add(task)

    async def _read(self) -> None:
        while True:
            ident, *frames = await self.sock.recv_multipart()
            try:
                self._frame(ident, frames)
            except Exception as exc:  # the one reader must outlive any frame: count it, go on
                self._dropped(f"{type(exc).__name__}")

    def _frame(self, ident: bytes, frames: list[bytes]) -> None:
        try:
            child, pid_text = ident.decode().rsplit(":", 1)
            pid = int(pid_text)
        except (ValueError, UnicodeDecodeError):
            self._dropped("routing id")  # not a plugin's routing id: nobody to answer
            return
        if len(frames) != 1:  # e.g. a REQ socket's empty delimiter: one frame per message
            self._malformed(child, pid, f"sent a message of {len(frames)} frames, not one "
                                        f"msgpack frame (use a DEALER socket)")
            return
        raw = frames[0]
        try:
            msg = unpack(raw)
        except CodecError as exc:
            why = exc.reason if "exceeds" in exc.reason else f"first bytes {exc.raw[:16]!r}"
            self._malformed(child, pid, f"sent a frame that is not valid msgpack ({why})")
            return
        if not isinstance(msg, dict):
            self._malformed(child, pid, f"sent a {type(msg).__name__}, not a JSON-RPC message object")
            return
        method, params = msg.get("method"), msg.get("params")
        if "method" in msg and (type(method) is not str or (params is not None and type(params) is not dict)):
            self._malformed(child, pid, "sent a message whose method is not a string or whose params are not a map")
            return
        if method == "$/ready":
            self.peers[child] = (ident, pid)
            self.ready.discard(child)
            if self.on_connect is not None:
                self.on_connect(child, pid)
            task = asyncio.get_running_loop().create_task(self._handshake(child, pid))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif not self._current(child, pid) and not ("id" in msg and (child, pid) in self._leaving):
            self._dropped("not from a connected plugin")  # only a plugin's own process answers or notifies
        elif "id" in msg and ("result" in msg or "error" in msg):
            if not self._pending.settle(msg["id"], msg, owner=child):
                self._dropped("reply to no request of this plugin")
        elif isinstance(method, str) and self.on_notification is not None:
            self.on_notification(child, method, params or {})

    def _dropped(self, why: str) -> None:
        """Count a frame nobody can be told about; say so on the bus at most once a second
        (the heartbeat reports what is left)."""
        self.malformed += 1
        self.dropped += 1
        self._drop_reason = why
        self._report_drops()

    def _report_drops(self) -> None:
        now = time.monotonic()
        if self.dropped > self._dropped_reported and now - self._dropped_said >= 1.0:
            self._dropped_said = now
            self.emit("plugin_frames_dropped", "warn", {"count": self.dropped - self._dropped_reported,
                                                        "endpoint": self.endpoint, "last_reason": self._drop_reason})
            self._dropped_reported = self.dropped

    def _malformed(self, child: str, pid: int, what: str) -> None:
        """A frame we cannot read: its reply id is lost, so fail what the plugin owes us.

        Waiting for the timeout instead would report a plugin that answers
        garbage as a hung one.
        """
        if self.peers.get(child, (b"", -1))[1] != pid:
            self._dropped(what[:80])  # a stale process of a replaced plugin, or no plugin at all
            return
        self.malformed += 1
        error = PluginProtocolError(f"plugin {child} {what}")
        self.emit("plugin_malformed_frame", "warn", {"child": child, "pid": pid, "error": str(error)})
        self._pending.fail(self._pending.owed_by(child), error)

    async def _send(self, child: str, msg: dict[str, Any]) -> None:
        peer = self.peers.get(child)
        if peer is None:
            raise Unavailable(f"plugin {child} is not connected")
        try:
            await self.sock.send_multipart([peer[0], pack(msg)])
        except zmq.ZMQError as exc:  # EHOSTUNREACH: it went away
            raise PluginGone(f"plugin {child} is not reachable: {exc}") from None

    async def request(self, child: str, method: str, params: Any, timeout: float) -> Any:
        """Send a request and return its result; raise PluginCallError or Unavailable."""
        req_id, fut = self._pending.open(child)
        try:
            await self._send(child, p.request(req_id, method, params))
        except BaseException:
            self._pending.discard(req_id)
            raise
        reply = await self._pending.wait(
            req_id, fut, timeout, lambda: Unavailable(f"plugin {child} did not answer {method} within {timeout:g}s"))
        if "error" in reply:
            raise PluginCallError(child, reply["error"] or {})
        return reply.get("result")

    async def notify(self, child: str, method: str, params: Any) -> None:
        await self._send(child, p.notification(method, params))

    async def _handshake(self, child: str, pid: int) -> None:
        params = {
            "protocol_version": p.PROTOCOL_VERSION,
            "host_info": {"name": "animus", "version": __version__},
            "capabilities": {"streaming": True, "progress": True, "cancellation": True},
            "config": self.configs.get(child, {}),
        }
        try:
            result = await self.request(child, "initialize", params, self.handshake_timeout)
            if not isinstance(result, dict):
                raise ValueError(f"initialize returned {type(result).__name__}, not a result object")
            theirs = str(result.get("protocol_version", ""))
            if not p.compatible(theirs):
                raise ValueError(f"protocol version mismatch: plugin speaks {theirs or '?'}, "
                                 f"host speaks {p.PROTOCOL_VERSION}; install a plugin built for "
                                 f"protocol {p.PROTOCOL_VERSION.split('.')[0]}.x")
            await self.notify(child, "initialized", {})
        except (PluginCallError, Unavailable, ValueError) as exc:
            if not self._current(child, pid) or isinstance(exc, PluginGone):
                # that process already exited (and may be replaced), or is on its way out: its
                # exit, with its own reason, is what its supervisor reports (a hung one that
                # only disconnected is caught by the supervisor's ready timeout)
                return
            error = f"handshake failed: {exc}"
            self.emit("plugin_handshake_failed", "error", {"child": child, "pid": pid, "error": error})
            self.on_failed(child, error)
            return
        self.info[child] = result
        if self.on_ready(child, pid, {"plugin_info": result.get("plugin_info", {}),
                                      "capabilities": result.get("capabilities", {})}):
            self.ready.add(child)
            self.misses[child] = 0

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL)
            self._report_drops()
            live = [c for c in self.ready if c in self.peers]
            results = await asyncio.gather(
                *(self.request(c, "$/ping", {}, PING_INTERVAL * 1.5) for c in live),
                return_exceptions=True,
            )
            now = time.monotonic()
            for child, res in zip(live, results):
                if isinstance(res, dict) and isinstance(res.get("health"), dict) and child in self.peers:
                    self.pinged[child] = (now, self.peers[child][1], res["health"])
                if isinstance(res, BaseException):
                    self.misses[child] = self.misses.get(child, 0) + 1
                    if self.misses[child] >= PING_MISSES and child in self.ready and child in self.peers:
                        self.ready.discard(child)
                        self.on_failed(child, f"not answering pings ({PING_MISSES} missed): hung?")
                else:
                    self.misses[child] = 0

    def _current(self, child: str, pid: int) -> bool:
        """True while ``pid`` is still the connected process of ``child``.

        ``on_failed`` kills the child's *current* process; a failure seen for
        an older one (it exited, and a restart may already be running) must
        not reach it.
        """
        peer = self.peers.get(child)
        return peer is not None and peer[1] == pid

    def forget(self, child: str) -> None:
        """The child exited: fail what it still owes once the replies it sent are read."""
        self.ready.discard(child)
        peer = self.peers.pop(child, None)
        owed = self._pending.owed_by(child)
        if owed:
            leaving = (child, peer[1]) if peer is not None else None
            if leaving is not None:
                self._leaving.add(leaving)  # its replies, and only replies, are still taken
            task = asyncio.get_running_loop().create_task(self._fail_owed(child, owed, leaving))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fail_owed(self, child: str, owed: dict[int, asyncio.Future[Any]],
                         leaving: tuple[str, int] | None) -> None:
        deadline = time.monotonic() + REPLY_GRACE
        while time.monotonic() < deadline and not all(fut.done() for fut in owed.values()):
            await asyncio.sleep(0.01)
        if leaving is not None:
            self._leaving.discard(leaving)
        self._pending.fail(owed, Unavailable(f"plugin {child} exited while handling the request"))

    async def health(self, child: str, timeout: float = 3.0) -> dict[str, Any]:
        """The plugin's health/check answer; from its last pong (``age_ms``) when that carried one
        and is at most 1.5 ping intervals old, else asked now (``latency_ms``)."""
        started = time.monotonic()
        pinged = self.pinged.get(child)
        if pinged is not None and started - pinged[0] <= PING_INTERVAL * 1.5 and self._current(child, pinged[1]):
            result: Any = dict(pinged[2], age_ms=round((started - pinged[0]) * 1000))
        else:
            result = await self.request(child, "health/check", {}, timeout)
        if not isinstance(result, dict) or result.get("status") not in ("healthy", "degraded", "unhealthy"):
            return {"status": "unhealthy", "garbage": True,
                    "last_error": f"health/check returned garbage: {result!r}"[:300]}
        result.setdefault("latency_ms", round((time.monotonic() - started) * 1000, 2))
        return result

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.sock.close(linger=0)
