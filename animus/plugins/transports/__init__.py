"""Shared parts of the transport plugins (transport-http, transport-graphql).

A transport is a plugin process that serves the daemon to the outside world
over HTTP. It talks to the daemon only as any other client does: control
RPC over the ``control`` socket and the event stream from ``bus.out``
(``link.DaemonLink``). What is shared:

- ``token``: the access token file ``<state root>/token`` (0600), created
  atomically by the first transport that needs it;
- ``auth``: the ASGI middleware that demands that token;
- ``bushub``: one bus subscription per transport, fanned out to many
  streaming clients, each with its own filter and its own gap reports;
- ``server``: uvicorn in a thread of the plugin process, the bound URL
  recorded in ``<state root>/transports/<plugin>.json``;
- ``plugin``: the plugin class that ties these together.
"""
