"""The ``--http`` listening socket: 127.0.0.1 only, bound before anything else starts.

Bound first, before the SDK is even imported, so that a busy port (a second
``animus mcp serve --http --port N``) is one clear error at once and the
server already running there is untouched.
"""

from __future__ import annotations

import socket

from animus.errors import InvalidInput

__all__ = ["bind"]


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise InvalidInput(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}",
                           fix="choose another --port, or --port 0 for a free one") from None
    sock.listen(128)
    return sock
