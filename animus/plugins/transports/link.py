"""A transport's two wires to the daemon: control RPC and the event bus.

Both live on the HTTP server's event loop (created in the ASGI lifespan).
The control endpoint comes from ``ANIMUS_CONTROL``; the bus output endpoint
from ``ANIMUS_BUS_OUT`` when the host sets it, else it is derived from
``ANIMUS_BUS_IN`` (the broker binds ``bus.in`` and ``bus.out`` side by side
in the scope's socket directory).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import zmq.asyncio

from animus.bus.rpc import AsyncControlClient
from animus.errors import AnimusError
from animus.plugins.transports.bushub import BusHub
from animus.plugin_runtime import protocol as p

__all__ = ["DaemonLink", "bus_out_endpoint", "HTTP_STATUS", "http_status"]

HTTP_STATUS = {"invalid_input": 400, "not_found": 404, "conflict": 409, "unavailable": 503, "internal": 500}


def http_status(exc: AnimusError) -> int:
    return HTTP_STATUS.get(exc.code, 500)


def bus_out_endpoint() -> str:
    explicit = os.environ.get("ANIMUS_BUS_OUT")
    if explicit:
        return explicit
    bus_in = os.environ.get(p.ENV_BUS, "")
    if bus_in.endswith("bus.in"):
        return bus_in[: -len("bus.in")] + "bus.out"
    raise RuntimeError(f"cannot tell the bus output endpoint from {p.ENV_BUS}={bus_in!r}; set ANIMUS_BUS_OUT")


class DaemonLink:
    def __init__(self, control_endpoint: str, bus_endpoint: str) -> None:
        self.control_endpoint = control_endpoint
        self.bus_endpoint = bus_endpoint
        self.ctx: zmq.asyncio.Context | None = None
        self.control: AsyncControlClient | None = None
        self.hub: BusHub | None = None
        self._hub_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ctx = zmq.asyncio.Context()
        self.control = AsyncControlClient(self.ctx, self.control_endpoint)
        self.hub = BusHub(self.ctx, self.bus_endpoint, self.control)
        self._hub_task = asyncio.get_running_loop().create_task(self.hub.run())

    async def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        assert self.control is not None, "DaemonLink.start() was not awaited"
        return await self.control.call(method, params or {}, timeout=timeout)

    async def wait_bus(self, timeout: float = 10.0) -> bool:
        assert self.hub is not None
        try:
            await asyncio.wait_for(self.hub.ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._hub_task is not None:
            self._hub_task.cancel()
            try:
                await self._hub_task
            except (asyncio.CancelledError, Exception):
                pass
        if self.hub is not None:
            self.hub.close()
        if self.control is not None:
            self.control.close()
        if self.ctx is not None:
            self.ctx.term()
