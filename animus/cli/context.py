"""Shared CLI state: the resolved scope and the one control client."""

from __future__ import annotations

import os
from functools import lru_cache

from animus.state.scope import Scope, resolve_scope

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["scope", "control", "call", "begin", "set_project_root"]

_project_root: str | None = None


def set_project_root(path: str | None) -> None:
    global _project_root
    _project_root = path
    scope.cache_clear()


@lru_cache(maxsize=1)
def scope() -> Scope:
    return resolve_scope(_project_root)


def control_endpoint() -> str:
    s = scope()
    preferred = s.root / "run"
    if len(str(preferred)) + 16 <= 100:
        return f"ipc://{preferred / 'control'}"
    return s.endpoint("control")


@lru_cache(maxsize=1)
def control() -> Any:
    """The control client: over ipc:// without importing pyzmq (``animus.bus.zmtp``)."""
    timeout = float(os.environ.get("ANIMUS_CLI_TIMEOUT", "10"))
    endpoint = control_endpoint()
    if endpoint.startswith("ipc://"):
        from animus.bus.zmtp import IpcControlClient

        return IpcControlClient(endpoint, timeout=timeout)
    from animus.bus.rpc import ControlClient

    return ControlClient(endpoint, timeout=timeout)


def daemon_alive() -> bool:
    """True when a daemon holds this scope's lock (cheap: one open and flock)."""
    import fcntl

    lock = scope().root / "daemon" / "daemon.lock"
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def call(method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
    return begin(method, params, timeout)()


def begin(method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> Callable[[], Any]:
    """Send ``method`` now; the function returned waits for its result, so that the CLI's own
    work (reading config, importing what prints the answer) goes on while the daemon works."""
    if not daemon_alive():
        from animus.errors import DAEMON_NOT_RUNNING, Unavailable

        raise Unavailable(DAEMON_NOT_RUNNING)
    client = control()
    if hasattr(client, "begin"):
        return client.begin(method, params or {}, timeout=timeout)  # type: ignore[no-any-return]
    return lambda: client.call(method, params or {}, timeout=timeout)  # the pyzmq client asks in one step
