"""Plugin runtime: the protocol, the Python SDK, manifests, installs, the host.

The SDK names are loaded on first use, so that CLI commands importing a
sibling module (manifests, the registry) do not pay for asyncio and zmq.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a CLI call ~7 ms to import; the annotation needs it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Plugin", "RequestContext", "RpcError", "method", "run_plugin", "PROTOCOL_VERSION"]


def __getattr__(name: str) -> Any:
    if name in ("Plugin", "RequestContext", "method", "run_plugin"):
        from animus.plugin_runtime import sdk

        return getattr(sdk, name)
    if name in ("RpcError", "PROTOCOL_VERSION"):
        from animus.plugin_runtime import protocol

        return getattr(protocol, name)
    raise AttributeError(name)
