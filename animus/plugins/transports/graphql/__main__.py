"""``transport-graphql`` plugin process: GraphQL (Ariadne) under uvicorn.

Routes: ``POST /graphql`` (queries and mutations), WebSocket ``/graphql``
(subscriptions, protocol ``graphql-transport-ws``), ``GET /schema.graphql``
(the SDL). Same token as ``transport-http`` (``Authorization: Bearer`` or
the cookie), checked before a WebSocket is accepted. No in-browser
explorer: it would load its scripts from a CDN.
Config: ``host`` (127.0.0.1), ``port`` (0 = ephemeral), ``max_body_bytes``
(1 MiB, enforced while the body streams), ``max_depth`` (10: deeper queries
are refused before they run); the URL is in
``<state root>/transports/transport-graphql.json``.
SIGTERM: as transport-http (open subscriptions get one second, then close).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from animus.plugins.transports.link import DaemonLink
from animus.plugins.transports.plugin import TransportPlugin
from animus.plugin_runtime.sdk import run_plugin


class Warming:
    """The GraphQL app, built in a thread while the server already listens.

    graphql-core and Ariadne take ~150 ms to import, the longest single part of
    the daemon's start. This ASGI app answers the server's lifespan at once
    (starting and closing the daemon link, as the built app's own lifespan
    would), and a request that comes before the app is built waits for it. A
    build that fails ends the worker: its supervisor restarts it and shows why."""

    def __init__(self, link: DaemonLink, build: Callable[[], Any]) -> None:
        self.link = link
        self.built: concurrent.futures.Future[Any] = concurrent.futures.Future()
        threading.Thread(target=self._build, args=(build,), name="graphql-build", daemon=True).start()

    def _build(self, build: Callable[[], Any]) -> None:
        try:
            self.built.set_result(build())
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = await asyncio.wrap_future(self.built)
        await app(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.link.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.link.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


class TransportGraphql(TransportPlugin):
    name = "transport-graphql"
    description = "GraphQL over the control socket and the bus, with subscriptions for live events"

    def build_app(self, link: DaemonLink, token: str) -> Any:
        def build() -> Any:
            from animus.plugins.transports.graphql.app import create_app  # graphql-core: see Warming

            return create_app(link, token, self.config, lifespan=False)

        return Warming(link, build)


if __name__ == "__main__":
    run_plugin(TransportGraphql)
