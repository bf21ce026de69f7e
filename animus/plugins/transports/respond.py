"""Small HTTP helpers the transports share: JSON bodies, errors, query values."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from animus.errors import AnimusError, InvalidInput
from animus.plugins.transports.link import http_status

__all__ = ["Json", "error_response", "json_body", "query_int", "query_text"]


class Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS)


def error_response(exc: AnimusError) -> Json:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.fix:
        body["fix"] = exc.fix
    return Json({"error": body}, status_code=http_status(exc))


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def query_text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value else None


def query_int(request: Request, name: str, lo: int, hi: int, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"query parameter {name} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise InvalidInput(f"query parameter {name} must be between {lo} and {hi}, got {value}")
    return value
