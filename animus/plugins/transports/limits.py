"""Request body limits for the transports, enforced while the body streams.

A ``Content-Length`` check alone is no limit: a chunked request has none,
and reading it "to check" is the attack (a 300 MiB chunked webhook grew
the transport to 336 MB before its 413). ``BodyLimit`` is the outermost
ASGI middleware: it answers 413 at once for a declared length over the
limit, and otherwise counts the bytes the app pulls from ``receive``; the
first chunk past the limit stops the app (``BodyTooLarge``, a
``BaseException`` so no ``except Exception`` in the app turns it into a
500) and the client gets 413. The app never sees a byte past the limit.

How the 413 ends the connection: closing a socket that still holds unread
request bytes makes the kernel reset it, and a reset can discard the 413
before a client that is still sending reads it (a 2 MiB JSON post then
failed "peer closed connection without sending complete message body" now
and then, not 413). So a declared body of up to ``DRAIN_FACTOR`` times the
limit keeps the connection open: the server reads the rest and drops it
(uvicorn discards a request's body once its response is sent), the client
reads its 413 and may send its next request. A chunked body past the limit
is read and dropped to its end before the 413, if it ends within the same
``DRAIN_FACTOR`` times the limit. A bigger body closes the connection: the
server stops reading an upload of no reasonable size. So does a request
that waits for ``100 Continue``: its client has sent no body, so nothing
unread can cause a reset. Memory stays flat either way: a dropped body is
never held.

Limits: ``max_body_bytes`` for every route (1 MiB), a prefix table for
routes with their own (``/webhooks/``: ``webhook_max_bytes``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["BodyLimit", "BodyTooLarge", "DEFAULT_MAX_BYTES", "DRAIN_FACTOR"]

DEFAULT_MAX_BYTES = 1 << 20
DRAIN_FACTOR = 8  # a body up to this many times the limit is read to its end and dropped


class BodyTooLarge(BaseException):
    """Raised from ``receive`` past the limit: stops the app, never caught by it."""


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BYTES,
                 by_prefix: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.by_prefix = dict(by_prefix or {})

    def limit(self, path: str) -> int:
        return next((n for prefix, n in self.by_prefix.items() if path.startswith(prefix)), self.max_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            # a client waiting for "100 Continue" has sent no body: closing resets nothing
            waiting = headers.get(b"expect", b"").lower() == b"100-continue"
            await _too_large(send, limit, close=waiting or int(declared) > DRAIN_FACTOR * limit)
            return
        seen = 0
        more = True  # the body has more to come
        started = False

        async def counted_receive() -> Any:
            nonlocal seen, more
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                more = bool(message.get("more_body", False))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        async def watched_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if not started:  # the rest read and dropped, up to DRAIN_FACTOR x the limit in all: see above
                whole = not more or await _drain(receive, DRAIN_FACTOR * limit - seen)
                await _too_large(send, limit, close=not whole)


async def _drain(receive: Any, budget: int) -> bool:
    """Read and drop the rest of a request's body; whether it ended within ``budget`` bytes."""
    while budget >= 0:
        message = await receive()
        if message["type"] != "http.request":
            return False  # the client went away
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return budget >= 0
    return False


async def _too_large(send: Any, limit: int, close: bool) -> None:
    body = orjson.dumps({"error": {"code": "invalid_input", "message": f"request body exceeds {limit} bytes"}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413,
                "headers": [*headers, (b"connection", b"close")] if close else headers})
    await send({"type": "http.response.body", "body": body})
