"""The transport plugin shape: an ASGI app served from a thread, reported by URL.

A subclass says how to build its app (``build_app(link, token)``); the base
does the rest: it makes sure the access token exists, binds
``config.host`` (default 127.0.0.1) and ``config.port`` (default 0: an
ephemeral port), starts uvicorn, records the URL, and answers
``transport/info`` and ``health/check`` with the URL and the stream
statistics. ``initialize`` fails (and with it the plugin's start) when the
address cannot be bound.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path
from typing import Any

from animus.plugins.transports.link import DaemonLink, bus_out_endpoint
from animus.plugins.transports.server import ServerThread, remove_endpoint, write_endpoint
from animus.plugins.transports.token import ensure_token
from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.sdk import Plugin, RequestContext, method

__all__ = ["TransportPlugin"]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class TransportPlugin(Plugin):
    role = "transport"
    version = "0.5.0"

    def __init__(self) -> None:
        super().__init__()
        self.server: ServerThread | None = None
        self.link: DaemonLink | None = None

    def build_app(self, link: DaemonLink, token: str) -> Any:
        raise NotImplementedError

    def on_initialize(self, params: dict[str, Any]) -> None:
        root = Path(self.state_root)
        token = ensure_token(root)
        self.link = DaemonLink(os.environ[p.ENV_CONTROL], str(self.config.get("bus_out") or bus_out_endpoint()))
        host = str(self.config.get("host") or "127.0.0.1")
        port = int(self.config.get("port") or 0)
        self.server = ServerThread(self.build_app(self.link, token), host, port)
        self.server.start()
        write_endpoint(root, self.name, self.server.url)
        if not _loopback(host):
            self.last_error = (f"listening on {host}, not a loopback address: "
                               "anyone who can reach it needs only the token")
        data = {"plugin": self.name, "url": self.server.url, "message": f"{self.name} listening on {self.server.url}"}
        # off the initialize path: the first publish waits for the broker's handshake
        threading.Thread(target=self.publish, args=("plugin", "transport_listening"), kwargs={"data": data},
                         daemon=True).start()

    health_blocks = False  # the server's flags and the hub's counters

    def health(self) -> dict[str, Any]:
        server, link = self.server, self.link
        if server is None or not server.alive:
            down = f"HTTP server is not running: {server.error!r}" if server else "not initialized"
            return {"status": "unhealthy", "last_error": down}
        stats = link.hub.statistics() if link and link.hub else {}
        error = self.last_error or (link.hub.last_error if link and link.hub else None)
        return {"status": "degraded" if error else "healthy", "last_error": error, "url": server.url, **stats}

    @method("transport/info")
    def info(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        server = self.server
        return {"url": server.url if server else None, "pid": os.getpid(),
                "host": server.host if server else None, "port": server.port if server else None}

    def on_shutdown(self) -> None:
        remove_endpoint(Path(self.state_root), self.name)
        if self.server is not None:
            self.server.stop()
