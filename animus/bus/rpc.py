"""Control RPC over ZeroMQ: the one client and the one server shape.

Requests are msgpack maps ``{id, method, params}``; replies are
``{id, result}`` or ``{id, error: {code, message, fix?, details?}}`` where
``code`` is one of the CLI error codes (``unavailable``, ``not_found`` …) so
that an error keeps its exit code across the socket. The CLI uses the
blocking ``ControlClient``; processes inside the daemon use
``AsyncControlClient`` (many calls in flight on one socket).

A control socket on tcp:// (for workflow runners on other hosts) requires a
``token`` field in every request: the server is given the token and rejects
a request without it, or with another one, before looking at its method.
"""

from __future__ import annotations

import hmac
import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq

if TYPE_CHECKING:  # the CLI's blocking client must not pay for importing asyncio
    import asyncio

    from zmq.asyncio import Context as AsyncContext

from animus.bus.codec import CodecError, pack, unpack
from animus.bus.curve import ClientKeys, secure_client
from animus.bus.frames import FrameError, request_fields
from animus.bus.pending import Pending
from animus.errors import DAEMON_NOT_RUNNING, AnimusError, Internal, InvalidInput, Unavailable, from_dict

__all__ = ["ControlClient", "AsyncControlClient", "serve_request", "Handler"]

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def _ipc_path(endpoint: str) -> Path | None:
    return Path(endpoint[len("ipc://"):]) if endpoint.startswith("ipc://") else None


def _unpack_reply(raw: bytes) -> dict[str, Any]:
    try:
        reply = unpack(raw)
    except CodecError as exc:
        raise Internal(f"unreadable reply from the daemon: {exc.reason}") from None
    if not isinstance(reply, dict):
        raise Internal("malformed reply from the daemon")
    return reply


class ControlClient:
    """Blocking client for the CLI: connect, send, wait with a deadline."""

    def __init__(self, endpoint: str, timeout: float = 5.0, token: str | None = None,
                 curve: ClientKeys | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.token = token
        self.curve = curve
        self._ids = itertools.count(1)
        self._sock: zmq.Socket[Any] | None = None

    def _socket(self) -> zmq.Socket[Any]:
        if self._sock is None:
            path = _ipc_path(self.endpoint)
            if path is not None and not path.exists():
                raise Unavailable(DAEMON_NOT_RUNNING)
            sock: zmq.Socket[Any] = zmq.Context.instance().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            secure_client(sock, self.endpoint, self.curve)  # tcp:// only (remote runners)
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout: float | None = None) -> Any:
        sock = self._socket()
        req_id = next(self._ids)
        request: dict[str, Any] = {"id": req_id, "method": method, "params": params or {}}
        if self.token is not None:
            request["token"] = self.token
        sock.send(pack(request))
        wait_ms = int((timeout if timeout is not None else self.timeout) * 1000)
        while True:
            if not sock.poll(wait_ms, zmq.POLLIN):
                self.close()
                raise Unavailable(
                    f"daemon did not answer {method} within {wait_ms / 1000:g}s",
                    fix="check it with animus daemon status; restart it with animus daemon stop && animus daemon start",
                )
            reply = _unpack_reply(sock.recv())
            if reply.get("id") == req_id:
                break
        if "error" in reply:
            raise from_dict(reply["error"])
        return reply.get("result")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None


class AsyncControlClient:
    """Asyncio client: one DEALER, many requests in flight, matched by id."""

    def __init__(self, ctx: AsyncContext, endpoint: str) -> None:
        self._sock = ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(endpoint)
        self._pending = Pending()
        self._reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        while True:
            raw = await self._sock.recv()
            try:
                reply = _unpack_reply(raw)
            except AnimusError:
                continue
            self._pending.settle(reply.get("id"), reply)

    async def call(self, method: str, params: dict[str, Any] | None = None,
                   timeout: float = 30.0) -> Any:
        import asyncio  # already loaded: we run inside its event loop

        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        req_id, fut = self._pending.open()
        await self._sock.send(pack({"id": req_id, "method": method, "params": params or {}}))
        reply = await self._pending.wait(
            req_id, fut, timeout, lambda: Unavailable(f"daemon did not answer {method} within {timeout:g}s"))
        if "error" in reply:
            raise from_dict(reply["error"])
        return reply.get("result")

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._pending.fail_all(Unavailable("control client closed"))
        self._sock.close(linger=0)


def error_payload(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, AnimusError):
        return exc.to_dict()
    return Internal(f"{type(exc).__name__}: {exc}").to_dict()


async def serve_request(raw: bytes, handlers: dict[str, Handler],
                        on_malformed: Callable[[str], None], token: str | None = None) -> bytes:
    """Decode one request, run its handler, encode the reply.

    Every frame gets a reply: garbage and wrongly typed fields get
    ``invalid_input`` (with the id when the id itself was readable) and are
    counted through ``on_malformed``. With ``token`` set, a request must
    carry that token or it is refused.
    """
    try:
        req = unpack(raw)
    except CodecError as exc:
        on_malformed(exc.reason)
        return _refusal(None, InvalidInput(f"unreadable request: {exc.reason[:120]}",
                                           fix="send one msgpack map {id, method, params}"))
    try:
        req_id, method, params = request_fields(req)
    except FrameError as exc:
        on_malformed(exc.reason)
        readable = req.get("id") if isinstance(req, dict) else None
        return _refusal(readable if isinstance(readable, (int, str)) and not isinstance(readable, bool)
                        and len(str(readable)) <= 128 else None,
                        InvalidInput(f"malformed request: {exc.reason}", fix="send {id, method, params}"))
    if token is not None and not hmac.compare_digest(_text(req.get("token")).encode(), token.encode()):
        on_malformed("missing or wrong token")
        return _refusal(req_id, InvalidInput("control request refused: missing or wrong token",
                                             fix="remote runners get the token from the daemon that started them"))
    handler = handlers.get(method)
    if handler is None:
        return _refusal(req_id, InvalidInput(f"unknown control method {method[:80]!r}"))
    try:
        result = await handler(params)
    except (TypeError, ValueError, KeyError) as exc:
        # the handlers read their params first: a wrong type there is the caller's input
        on_malformed("params of the wrong type")
        return _refusal(req_id, InvalidInput(f"{method}: invalid params ({type(exc).__name__}: {exc})"[:300]))
    except Exception as exc:
        return pack({"id": req_id, "error": error_payload(exc)})
    try:
        return pack({"id": req_id, "result": result})
    except Exception as exc:
        return pack({"id": req_id, "error": error_payload(exc)})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _refusal(req_id: Any, err: AnimusError) -> bytes:
    return pack({"id": req_id, "error": err.to_dict()})
