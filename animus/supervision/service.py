"""A child supervisor's own logic, kept apart from supervising (OTP's split).

A child supervisor supervises: it knows child specs, restart budgets and its
workers' sockets, nothing of their business. Some supervisors also run logic
of their own (the workflows supervisor keeps a run queue); that logic is a
*service*, named in the supervisor's config as ``"module:factory"`` and built
with a ``ServiceContext``: the narrow things it may use (its config section,
a bus emitter, the dynamic children it may start and stop, a task owner).
The service gives back the control methods it answers and the extra rows it
shows in the tree. Nothing here imports a service: the dependency points up.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import zmq.asyncio

from animus.errors import InvalidInput
from animus.supervision.exit_reason import ExitReason
from animus.supervision.spec import ChildSpec, Restart
from animus.supervision.supervisor import Supervisor

__all__ = ["ChildService", "DynamicChildren", "Handler", "ServiceContext", "load_service"]

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
Emit = Callable[[str, str, dict[str, Any]], None]
ExitCallback = Callable[[str, ExitReason], None]


class DynamicChildren:
    """The part of a supervisor a service may use: start, stop and count its
    dynamic (``temporary``) children, and hear when one exits."""

    def __init__(self, sup: Supervisor) -> None:
        self._sup = sup
        self._on_exit: list[ExitCallback] = []

    async def start(self, spec: ChildSpec) -> None:
        await self._sup.start_child(spec, wait_ready=False)

    async def stop(self, child_id: str) -> None:
        await self._sup.stop_child(child_id)

    def __contains__(self, child_id: object) -> bool:
        return child_id in self._sup.children

    def running(self) -> set[str]:
        return {c for c, rec in self._sup.children.items() if rec.proc and rec.proc.returncode() is None}

    def snapshot(self) -> list[dict[str, Any]]:
        return self._sup.snapshot()

    def on_exit(self, callback: ExitCallback) -> None:
        self._on_exit.append(callback)

    def exited(self, child_id: str, reason: ExitReason) -> None:
        """Called by the supervisor: a finished dynamic child leaves the tree, then listeners hear of it."""
        rec = self._sup.children.get(child_id)
        if rec is not None and rec.spec.restart is not Restart.PERMANENT:
            self._sup.children.pop(child_id, None)
            if child_id in self._sup.policy.specs:
                self._sup.policy.remove(child_id)
        for callback in self._on_exit:
            callback(child_id, reason)


@dataclass(frozen=True)
class ServiceContext:
    name: str
    config: Mapping[str, Any]
    zmq: zmq.asyncio.Context
    emit: Emit
    publish: Callable[..., Any]
    children: DynamicChildren
    spawn: Callable[[Coroutine[Any, Any, Any]], Any]
    changed: Callable[[], None]


class ChildService(Protocol):
    def handlers(self) -> Mapping[str, Handler]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def abandon(self) -> None:
        """The supervisor is dying with no time for ``stop`` (its root is gone): kill at once
        what the service owns beyond the workers' process groups (the supervisor kills those)."""

    def extra_children(self) -> list[dict[str, Any]]: ...


ServiceFactory = Callable[[ServiceContext], ChildService]


def load_service(path: str) -> ServiceFactory:
    """``"package.module:Factory"`` → the factory (imported only in the supervisor that runs it)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise InvalidInput(f"service {path!r} must be written module:factory")
    factory: ServiceFactory = getattr(importlib.import_module(module_name), attr)
    return factory
