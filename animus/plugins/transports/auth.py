"""Bearer-token access control for the transports, as ASGI middleware.

A request is let in when it carries the token in ``Authorization: Bearer
<token>`` or in the ``animus_token`` cookie. A browser gets the cookie by
opening the URL ``animus web open`` prints (``/?token=<token>``): the
middleware answers that with a redirect to the same path without the token
and sets the cookie (HttpOnly, SameSite=Strict, path /), so the token leaves
the address bar and page scripts never see it. Paths under an exempt prefix
(``/webhooks/``: senders such as GitHub authenticate with an HMAC signature
instead) pass through. Anything else gets 401 with a JSON error naming the
fix. Comparisons are constant-time.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

__all__ = ["TokenAuth", "COOKIE"]

COOKIE = "animus_token"
_FIX = "send Authorization: Bearer <token>; the token is in <state root>/token (animus web open prints a URL with it)"


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


class TokenAuth:
    def __init__(self, app: Any, token: str, exempt: Sequence[str] = ()) -> None:
        self.app = app
        self.token = token.encode()
        self.exempt = tuple(exempt)

    def _ok(self, value: str | None) -> bool:
        return bool(value) and secrets.compare_digest(str(value).encode(), self.token)

    def authorized(self, scope: dict[str, Any]) -> bool:
        headers = _headers(scope)
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self._ok(value.strip()):
            return True
        return self._ok(_cookie(headers.get("cookie", ""), COOKIE))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = [v for k, v in query if k == "token"]
        if scope["type"] == "http" and offered and self._ok(offered[-1]):
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            await _login_redirect(send, scope["path"] + (f"?{rest}" if rest else ""), offered[-1])
            return
        if self.authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": "unauthorized"})
            return
        body = orjson.dumps({"error": {"code": "unauthorized", "message": "missing or wrong access token",
                                       "fix": _FIX}})
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="animus"'),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _login_redirect(send: Any, location: str, token: str) -> None:
    cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
    await send({"type": "http.response.start", "status": 303, "headers": [
        (b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1")),
        (b"cache-control", b"no-store"), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
