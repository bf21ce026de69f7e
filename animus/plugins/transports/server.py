"""uvicorn in a thread of the plugin process, and where its URL is recorded.

The plugin SDK owns the process's main thread and event loop (the plugin
protocol); the HTTP server gets a thread and a loop of its own, so a slow
HTTP client can never delay a ``$/ping`` answer. The listening socket is
bound before the thread starts: a busy port fails the plugin's
``initialize`` (and so its start, under the restart budget) with the
reason, and port 0 yields the real ephemeral port for the URL.

The URL is written to ``<state root>/transports/<plugin>.json``
(``{url, pid, plugin}``, atomically) once the server accepts connections,
and removed at shutdown; ``animus web open`` reads it.

Shutdown: ``should_exit``, then uvicorn closes the listener, gives open
requests (streams included) one second, and ends; the thread is joined.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

# what uvicorn.Config.load() imports by name for the settings below: imported with this module, so
# the transports' zygote preloads them once instead of every worker after its fork (~30 ms each)
import uvicorn.lifespan.on  # noqa: F401
import uvicorn.loops.asyncio  # noqa: F401
import uvicorn.protocols.http.auto  # noqa: F401
import uvicorn.protocols.websockets.websockets_sansio_impl  # noqa: F401

from animus.state.files import atomic_write

__all__ = ["ServerThread", "endpoint_file", "write_endpoint", "remove_endpoint", "read_endpoint"]


def endpoint_file(state_root: Path, plugin: str) -> Path:
    return state_root / "transports" / f"{plugin}.json"


def write_endpoint(state_root: Path, plugin: str, url: str) -> Path:
    path = endpoint_file(state_root, plugin)
    atomic_write(path, json.dumps({"url": url, "pid": os.getpid(), "plugin": plugin}).encode(), 0o600)
    return path


def read_endpoint(state_root: Path, plugin: str) -> dict[str, Any] | None:
    try:
        data = json.loads(endpoint_file(state_root, plugin).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_endpoint(state_root: Path, plugin: str) -> None:
    data = read_endpoint(state_root, plugin)
    if data is not None and data.get("pid") == os.getpid():  # never a successor's record
        endpoint_file(state_root, plugin).unlink(missing_ok=True)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


class ServerThread:
    def __init__(self, app: Any, host: str, port: int) -> None:
        self.sock = _bind(host, port)
        bound = self.sock.getsockname()[1]
        self.url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
        self.host, self.port = host, bound
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", loop="asyncio",
                                ws="websockets-sansio", timeout_graceful_shutdown=1, server_header=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="http", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # reported through health and start()
            self.error = exc

    def start(self, timeout: float = 5.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"HTTP server stopped during start-up: {self.error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"HTTP server did not start within {timeout:g}s")
            time.sleep(0.002)  # uvicorn sets started without telling anyone: poll, briefly

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 3.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()
