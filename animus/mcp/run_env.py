""""My task": the run an agent works in, as its environment names it.

When Animus starts ``animus mcp serve`` for an agent (an agent profile with
``mcp_servers: [animus]``), the server's environment carries the run's ids:

- ``ANIMUS_TASK_ID``: the subject the run works on, qualified
  (``task:TASK-001``, ``requirement:REQ-002``);
- ``ANIMUS_WORKFLOW_ID``: the run's workflow id.

A tool whose ``id`` / ``task_id`` / ``workflow_id`` is left out uses these,
so a model can say "set my task to done" without knowing an id. Outside a
run (an operator's own MCP client) they are unset, and leaving the id out is
an error that says which argument to give.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from animus.errors import InvalidInput

__all__ = ["TASK_ENV", "WORKFLOW_ENV", "RunEnv", "kind_of"]

TASK_ENV = "ANIMUS_TASK_ID"
WORKFLOW_ENV = "ANIMUS_WORKFLOW_ID"


@dataclass(frozen=True)
class RunEnv:
    task_id: str | None = None
    workflow_id: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RunEnv:
        env = os.environ if environ is None else environ
        return cls(env.get(TASK_ENV) or None, env.get(WORKFLOW_ENV) or None)

    def task(self, tool: str, given: str | None, argument: str = "id") -> str:
        if given:
            return given
        if self.task_id:
            return self.task_id
        raise InvalidInput(f"{tool}: give {argument!r}: this server is not running for a workflow run "
                           f"({TASK_ENV} is unset), so there is no 'my task'")

    def workflow(self, tool: str, given: str | None) -> str:
        if given:
            return given
        if self.workflow_id:
            return self.workflow_id
        raise InvalidInput(f"{tool}: give 'id' (a workflow id): this server is not running for a workflow run "
                           f"({WORKFLOW_ENV} is unset)")


def kind_of(subject_id: str | None, kind: str | None) -> str:
    """The kind to route to: given, else the id's prefix (``requirement:REQ-1``), else ``task``."""
    if kind:
        return kind
    if subject_id and ":" in subject_id:
        return subject_id.split(":", 1)[0]
    return "task"
