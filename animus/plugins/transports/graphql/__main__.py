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

from typing import Any

from animus.plugins.transports.link import DaemonLink
from animus.plugins.transports.plugin import TransportPlugin
from animus.plugin_runtime.sdk import run_plugin


class TransportGraphql(TransportPlugin):
    name = "transport-graphql"
    description = "GraphQL over the control socket and the bus, with subscriptions for live events"

    def build_app(self, link: DaemonLink, token: str) -> Any:
        from animus.plugins.transports.graphql.app import create_app  # imports graphql-core: see app.py

        return create_app(link, token, self.config)


if __name__ == "__main__":
    run_plugin(TransportGraphql)
