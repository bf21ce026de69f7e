"""The plugin host: one ROUTER per role supervisor, many plugin DEALERs.

A single reader owns the socket; requests get ids and futures, replies are
matched by id (never read inline). A plugin counts as started once the
handshake is done (``$/ready`` → ``initialize`` → ``initialized``). A
heartbeat pings every running plugin; one that stops answering is killed so
that its supervisor restarts it under the restart budget.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from animus import __version__
from animus.bus.codec import CodecError, pack, unpack
from animus.errors import Unavailable
from animus.plugin_runtime import protocol as p

__all__ = ["PluginHost", "PluginCallError", "PluginProtocolError"]

HANDSHAKE_TIMEOUT = float(os.environ.get("ANIMUS_HANDSHAKE_TIMEOUT", "5"))
PING_INTERVAL = float(os.environ.get("ANIMUS_PING_INTERVAL", "2"))
PING_MISSES = 3


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
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.malformed = 0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for coro in (self._read(), self._heartbeat()):
            task = loop.create_task(coro)
            self._tasks.add(task)

    async def _read(self) -> None:
        while True:
            ident, *frames = await self.sock.recv_multipart()
            try:
                child, pid_text = ident.decode().rsplit(":", 1)
                pid = int(pid_text)
            except (ValueError, UnicodeDecodeError):
                self.malformed += 1  # not a plugin's routing id: nobody to answer
                continue
            if len(frames) != 1:  # e.g. a REQ socket's empty delimiter: one frame per message
                self._malformed(child, pid, f"sent a message of {len(frames)} frames, not one "
                                            f"msgpack frame (use a DEALER socket)")
                continue
            raw = frames[0]
            try:
                msg = unpack(raw)
            except CodecError as exc:
                why = exc.reason if "exceeds" in exc.reason else f"first bytes {exc.raw[:16]!r}"
                self._malformed(child, pid, f"sent a frame that is not valid msgpack ({why})")
                continue
            if not isinstance(msg, dict):
                self._malformed(child, pid, f"sent a {type(msg).__name__}, not a JSON-RPC message object")
                continue
            if msg.get("method") == "$/ready":
                self.peers[child] = (ident, pid)
                self.ready.discard(child)
                if self.on_connect is not None:
                    self.on_connect(child, pid)
                task = asyncio.get_running_loop().create_task(self._handshake(child, pid))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif "id" in msg and ("result" in msg or "error" in msg):
                entry = self._pending.pop(msg["id"], None) if isinstance(msg["id"], int) else None
                if entry is not None and not entry[1].done():
                    entry[1].set_result(msg)
            elif "method" in msg and self.on_notification is not None:
                self.on_notification(child, str(msg["method"]), msg.get("params") or {})

    def _malformed(self, child: str, pid: int, what: str) -> None:
        """A frame we cannot read: its reply id is lost, so fail what the plugin owes us.

        Waiting for the timeout instead would report a plugin that answers
        garbage as a hung one.
        """
        self.malformed += 1
        if self.peers.get(child, (b"", -1))[1] != pid:
            return  # a stale process of a plugin that was already replaced
        error = PluginProtocolError(f"plugin {child} {what}")
        self.emit("plugin_malformed_frame", "warn", {"child": child, "pid": pid, "error": str(error)})
        for req_id, (owner, fut) in list(self._pending.items()):
            if owner == child and not fut.done():
                fut.set_exception(error)
                self._pending.pop(req_id, None)

    async def _send(self, child: str, msg: dict[str, Any]) -> None:
        peer = self.peers.get(child)
        if peer is None:
            raise Unavailable(f"plugin {child} is not connected")
        try:
            await self.sock.send_multipart([peer[0], pack(msg)])
        except zmq.ZMQError as exc:  # EHOSTUNREACH: it went away
            raise Unavailable(f"plugin {child} is not reachable: {exc}") from None

    async def request(self, child: str, method: str, params: Any, timeout: float) -> Any:
        """Send a request and return its result; raise PluginCallError or Unavailable."""
        req_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (child, fut)
        try:
            await self._send(child, p.request(req_id, method, params))
            reply = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise Unavailable(f"plugin {child} did not answer {method} within {timeout:g}s") from None
        finally:
            self._pending.pop(req_id, None)
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
            if not self._current(child, pid):
                return  # that process already exited (and may be replaced): its supervisor knows
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
            live = [c for c in self.ready if c in self.peers]
            results = await asyncio.gather(
                *(self.request(c, "$/ping", {}, PING_INTERVAL * 1.5) for c in live),
                return_exceptions=True,
            )
            for child, res in zip(live, results):
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
        """The child exited: fail its pending requests at once."""
        self.ready.discard(child)
        self.peers.pop(child, None)
        for req_id, (owner, fut) in list(self._pending.items()):
            if owner == child and not fut.done():
                fut.set_exception(Unavailable(f"plugin {child} exited while handling the request"))
                self._pending.pop(req_id, None)

    async def health(self, child: str, timeout: float = 3.0) -> dict[str, Any]:
        started = time.monotonic()
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
