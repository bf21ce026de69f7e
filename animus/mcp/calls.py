"""What a tool handler is given, and what a tool is: the shapes shared by the tool modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from animus.mcp.link import DaemonLink
from animus.mcp.run_env import RunEnv

__all__ = ["Call", "Tool", "Handler"]


@dataclass(frozen=True)
class Call:
    """One tool call: its checked arguments, the daemon link and the run's ids."""

    tool: str
    args: dict[str, Any]
    link: DaemonLink
    run: RunEnv

    def opt(self, name: str) -> Any:
        return self.args.get(name)


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Tool:
    """A tool as ``tools/list`` shows it, and the handler that serves it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    handler: Handler
