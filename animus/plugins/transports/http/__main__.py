"""``transport-http`` plugin process: the REST/SSE app under uvicorn.

Config (``.animus/config.yaml`` → ``plugins: {transport-http: {config: …}}``):
``host`` (127.0.0.1), ``port`` (0 = ephemeral), ``ui_plugin`` (web-ui),
``webhook_plugin`` (webhook), ``webhook_max_bytes`` (1 MiB).
SIGTERM: the server stops accepting, open streams get one second, the URL
record is removed, the process exits (well inside the host's 5 s).
"""

from __future__ import annotations

from typing import Any

from animus.plugins.transports.http.app import create_app
from animus.plugins.transports.link import DaemonLink
from animus.plugins.transports.plugin import TransportPlugin
from animus.plugin_runtime.sdk import run_plugin


class TransportHttp(TransportPlugin):
    name = "transport-http"
    description = "REST, server-sent events and /metrics over the control socket and the bus; serves the web UI"

    def build_app(self, link: DaemonLink, token: str) -> Any:
        return create_app(link, token, self.config)


if __name__ == "__main__":
    run_plugin(TransportHttp)
