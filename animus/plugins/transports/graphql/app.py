"""The GraphQL transport's ASGI app: Ariadne's handler behind the token and body limits.

Kept out of the plugin's entry module: graphql-core and Ariadne take ~120 ms
to import, and the zygote that forks every transport need not import them
before it can fork the others; the worker imports them in a thread while its
server already listens (``__main__.Warming``).
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

__all__ = ["create_app"]


def create_app(link: DaemonLink, token: str, config: dict[str, Any] | None = None, lifespan: bool = True) -> Any:
    """The app; with ``lifespan=False`` its caller starts and closes ``link`` (see ``__main__.Warming``)."""
    config = config or {}
    rules = [depth_limit(int(config.get("max_depth") or DEFAULT_MAX_DEPTH))]
    graphql = GraphQL(build_schema(link), websocket_handler=GraphQLTransportWSHandler(),
                      explorer=ExplorerHttp405(), validation_rules=rules)

    async def sdl(request: Request) -> Response:
        return PlainTextResponse(SCHEMA_FILE.read_text())

    @contextlib.asynccontextmanager
    async def linked(app: Starlette) -> AsyncIterator[None]:
        await link.start()
        try:
            yield
        finally:
            await link.close()

    app = Starlette(routes=[
        Route("/graphql", graphql.handle_request, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql.handle_websocket),
        Route("/schema.graphql", sdl),
    ], lifespan=linked if lifespan else None)
    return BodyLimit(TokenAuth(app, token), int(config.get("max_body_bytes") or DEFAULT_MAX_BYTES))
