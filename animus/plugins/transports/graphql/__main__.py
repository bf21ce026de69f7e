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

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ariadne.asgi import GraphQL
from ariadne.asgi.handlers import GraphQLTransportWSHandler
from ariadne.explorer import ExplorerHttp405
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from animus.plugins.transports.graphql.depth import DEFAULT_MAX_DEPTH, depth_limit
from animus.plugins.transports.graphql.resolvers import SCHEMA_FILE, build_schema
from animus.plugins.transports.limits import DEFAULT_MAX_BYTES, BodyLimit
from animus.plugins.transports.auth import TokenAuth
from animus.plugins.transports.link import DaemonLink
from animus.plugins.transports.plugin import TransportPlugin
from animus.plugin_runtime.sdk import run_plugin


def create_app(link: DaemonLink, token: str, config: dict[str, Any] | None = None) -> Any:
    config = config or {}
    rules = [depth_limit(int(config.get("max_depth") or DEFAULT_MAX_DEPTH))]
    graphql = GraphQL(build_schema(link), websocket_handler=GraphQLTransportWSHandler(),
                      explorer=ExplorerHttp405(), validation_rules=rules)

    async def sdl(request: Request) -> Response:
        return PlainTextResponse(SCHEMA_FILE.read_text())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await link.start()
        try:
            yield
        finally:
            await link.close()

    app = Starlette(routes=[
        Route("/graphql", graphql.handle_request, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql.handle_websocket),
        Route("/schema.graphql", sdl),
    ], lifespan=lifespan)
    return BodyLimit(TokenAuth(app, token), int(config.get("max_body_bytes") or DEFAULT_MAX_BYTES))


class TransportGraphql(TransportPlugin):
    name = "transport-graphql"
    description = "GraphQL over the control socket and the bus, with subscriptions for live events"

    def build_app(self, link: DaemonLink, token: str) -> Any:
        return create_app(link, token, self.config)


if __name__ == "__main__":
    run_plugin(TransportGraphql)
