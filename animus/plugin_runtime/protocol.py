"""The plugin protocol: JSON-RPC 2.0 shapes carried as msgpack over ZeroMQ.

A plugin is a DEALER connected to its role supervisor's ROUTER. It speaks
first (``$/ready``), because a ROUTER cannot address a peer it has not heard
from; then the host sends ``initialize`` and, once the reply is accepted,
``initialized``. See docs/plugin-protocol.md for the full contract.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PROTOCOL_VERSION",
    "PARSE_ERROR",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "INVALID_PARAMS",
    "INTERNAL_ERROR",
    "NOT_INITIALIZED",
    "METHOD_NOT_SUPPORTED",
    "CANCELLED",
    "TIMEOUT",
    "RpcError",
    "request",
    "notification",
    "result",
    "error",
    "compatible",
    "ROLES",
]

PROTOCOL_VERSION = "1.0.0"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_INITIALIZED = -32000
METHOD_NOT_SUPPORTED = -32001
CANCELLED = -32002
TIMEOUT = -32003

ROLES = ("provider", "subject", "trigger", "transport", "web-ui", "log-storage")

# Environment a plugin process is given by its host.
ENV_ENDPOINT = "ANIMUS_PLUGIN_ENDPOINT"
ENV_ID = "ANIMUS_PLUGIN_ID"
ENV_BUS = "ANIMUS_BUS_IN"
ENV_CONTROL = "ANIMUS_CONTROL"
ENV_CONFIG = "ANIMUS_PLUGIN_CONFIG"
ENV_STATE = "ANIMUS_STATE_ROOT"
ENV_PROJECT = "ANIMUS_PROJECT_ROOT"


class RpcError(Exception):
    """An error a handler returns to the caller as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


def request(req_id: int | str, method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}}


def notification(method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params or {}}


def result(req_id: int | str | None, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "result": value}


def error(req_id: int | str | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": RpcError(code, message, data).to_dict()}


def compatible(theirs: str, ours: str = PROTOCOL_VERSION) -> bool:
    """Same major version means compatible."""
    return str(theirs).split(".", 1)[0] == ours.split(".", 1)[0]
