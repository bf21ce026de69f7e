"""What the workflows service says on the bus, and the one way it blocks a run.

Publishing is not allowed to fail quietly: an error here reaches the
service's nursery and ends the supervisor loudly (it is restarted, and crash
recovery takes over), instead of runs moving without anyone hearing of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from animus.workflow.store import WorkflowStore

__all__ = ["WorkflowEvents"]

Emit = Callable[[str, str, dict[str, Any]], None]


class WorkflowEvents:
    def __init__(self, emit: Emit, publish: Callable[..., Any], store: WorkflowStore) -> None:
        self.emit = emit  # supervisor-category events (scheduler, projection, triggers)
        self._publish = publish
        self._store = store

    def workflow(self, kind: str, level: str, wf_id: str, **data: Any) -> None:
        """A ``workflow``-category event about one run."""
        self._publish("workflow", kind, level, data, workflow_id=wf_id)

    def block(self, wf_id: str, reason: str) -> None:
        self._store.set_status(wf_id, "blocked", reason)
        self.workflow("workflow_blocked", "error", wf_id, reason=reason, message=f"blocked: {reason}")
