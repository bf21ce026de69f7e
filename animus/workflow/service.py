"""Workflows supervisor (placeholder until the engine lands)."""

from __future__ import annotations

from typing import Any

from animus.supervision.child import ChildSupervisor

__all__ = ["WorkflowSupervisor"]


class WorkflowSupervisor(ChildSupervisor):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
