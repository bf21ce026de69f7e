"""Checks at a socket's edge: nothing from a peer is trusted before it passes here.

Every socket the daemon binds (control, tree, a role's plugin host, the bus
inputs) reads msgpack frames that anyone able to reach it can write. A frame
that decodes is still only *some* value: an ``id`` may be a map, ``params`` a
list, a subtree a string. Code behind the edge indexes dicts and hashes ids,
so one wrong type there raises in a long-lived receive loop. These helpers
turn every such frame into a ``FrameError`` with a short reason (what the
caller counts, and answers with ``invalid_input`` where a reply is possible)
or into values of the promised types.

``param_*`` read one typed field of a request's params for a handler, with
the one-line ``InvalidInput`` an operator sees for a wrong type.
"""

from __future__ import annotations

import math
from typing import Any

from animus.errors import InvalidInput

__all__ = ["MAX_ID_CHARS", "FrameError", "request_fields", "reply_id", "subtree", "param_int", "param_float",
           "param_str"]

MAX_ID_CHARS = 128
_INT64 = (-(2**63), 2**64 - 1)


class FrameError(ValueError):
    """A frame that decoded but does not have the promised shape."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_int(value: Any) -> bool:
    return type(value) is int and _INT64[0] <= value <= _INT64[1]


def _valid_id(value: Any) -> bool:
    return value is None or _is_int(value) or (type(value) is str and len(value) <= MAX_ID_CHARS)


def request_fields(msg: Any) -> tuple[int | str | None, str, dict[str, Any]]:
    """``(id, method, params)`` of a control request, or FrameError.

    An id that is not an integer, a short string or null is refused: it is
    echoed in the reply and used as a dict key by clients.
    """
    if type(msg) is not dict:
        raise FrameError("request is not a map with a method")
    req_id = msg.get("id")
    if not _valid_id(req_id):
        raise FrameError(f"request id must be an integer or a string of at most {MAX_ID_CHARS} characters")
    method = msg.get("method")
    if type(method) is not str or not method:
        raise FrameError("request is not a map with a method")
    params = msg.get("params")
    if params is None:
        params = {}
    if type(params) is not dict or not all(type(k) is str for k in params):
        raise FrameError("params must be a map with string keys")
    return req_id, method, params


def reply_id(msg: dict[str, Any]) -> int:
    """The integer id of a reply to one of our requests, or FrameError."""
    value = msg.get("id")
    if type(value) is not int or not _is_int(value):
        raise FrameError("reply id is not an integer")
    return value


def subtree(children: Any) -> list[dict[str, Any]]:
    """A child supervisor's subtree as the root keeps it: a list of maps with a
    string name, an integer pid (or none) and text fields that are text."""
    if type(children) is not list:
        raise FrameError("children is not a list")
    out = []
    for child in children:
        if type(child) is not dict or type(child.get("name")) is not str:
            raise FrameError("a child is not a map with a name")
        pid = child.get("pid")
        if pid is not None and not (_is_int(pid) and pid >= 0):
            raise FrameError("a child's pid is not an integer")
        born = child.get("create_time")
        if born is not None and type(born) is not float:
            raise FrameError("a child's create_time is not a float")
        for key in ("state", "role", "kind", "last_error"):
            if child.get(key) is not None and type(child[key]) is not str:
                raise FrameError(f"a child's {key} is not text")
        if child.get("children") is not None:
            subtree(child["children"])
        out.append(child)
    return out


# -- typed params for handlers ---------------------------------------------------

def _bad(method: str, key: str, want: str, value: Any) -> InvalidInput:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
    return InvalidInput(f"{method}: param {key!r} must be {want}, got {shown}",
                        fix=f"pass {key} as {want}")


def param_int(params: dict[str, Any], key: str, default: int, lo: int, hi: int, method: str = "request") -> int:
    value = params.get(key, default)
    if value is None:
        return default
    if type(value) is not int or not lo <= value <= hi:
        raise _bad(method, key, f"an integer from {lo} to {hi}", value)
    return value


def param_float(params: dict[str, Any], key: str, default: float, lo: float, hi: float,
                method: str = "request") -> float:
    value = params.get(key, default)
    if value is None:
        return default
    if type(value) not in (int, float) or not math.isfinite(value) or not lo <= value <= hi:
        raise _bad(method, key, f"a number from {lo:g} to {hi:g}", value)
    return float(value)


def param_str(params: dict[str, Any], key: str, method: str = "request", required: bool = False) -> str | None:
    value = params.get(key)
    if value is None:
        if required:
            raise InvalidInput(f"{method}: param {key!r} is required", fix=f"pass {key} as a string")
        return None
    if type(value) is not str:
        raise _bad(method, key, "a string", value)
    return value
