"""The MCP server's one wire to the daemon: the control socket, as the CLI uses it.

The scope (project root, state root, control endpoint) is resolved the way
the CLI resolves it (``animus --project-root P mcp serve``, else the git
root of the working directory). Before each call the daemon's lock is
checked, as the CLI does, so a daemon that is down is one clear error
(``daemon not running: start it with animus daemon start``) instead of a
timeout; a daemon started later is reached without restarting the server
(the DEALER socket reconnects by itself).
"""

from __future__ import annotations

from typing import Any

import zmq.asyncio

from animus.bus.rpc import AsyncControlClient
from animus.cli import context
from animus.errors import DAEMON_NOT_RUNNING, Unavailable
from animus.mcp.run_env import RunEnv
from animus.state.scope import Scope

__all__ = ["DaemonLink"]


class DaemonLink:
    """Control calls from the server's event loop; created lazily inside it."""

    def __init__(self) -> None:
        self._ctx: zmq.asyncio.Context | None = None
        self._client: AsyncControlClient | None = None

    @property
    def scope(self) -> Scope:
        return context.scope()

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20.0) -> Any:
        if not context.daemon_alive():
            raise Unavailable(DAEMON_NOT_RUNNING)
        if self._client is None:
            self._ctx = zmq.asyncio.Context()
            self._client = AsyncControlClient(self._ctx, context.control_endpoint())
        return await self._client.call(method, params or {}, timeout=timeout)

    async def subject(self, kind: str, verb: str, params: dict[str, Any]) -> Any:
        """``<kind>/<verb>`` on the subject plugin the routing picks (what ``animus subject`` calls).

        The daemon's ``subject_*`` event for a change says it came over MCP and, for an
        agent's server, is tagged with the agent's run (``ANIMUS_WORKFLOW_ID``)."""
        run = RunEnv.from_environ()
        return await self.call("subject/call", {"kind": kind, "verb": verb, "params": params, "origin": "mcp",
                                                **({"workflow_id": run.workflow_id} if run.workflow_id else {})})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
