"""The one surface every subject backend offers, as a typing Protocol.

The plugin layer maps the verbs of ``<kind>/list|get|create|update|status|next``
onto these methods; ``SubjectStore``, ``MarkdownStore`` and ``LinearClient``
all satisfy it (mypy checks that in ``__init__``), so a plugin is one small
adapter whichever backend it wraps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from .model import Subject

__all__ = ["SubjectBackend"]


@runtime_checkable
class SubjectBackend(Protocol):
    kind: str

    def list(
        self,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
        labels: Iterable[str] | None = None,
    ) -> list[Subject]: ...

    def get(self, subject_id: str) -> Subject: ...

    def create(
        self,
        title: str,
        description: str = "",
        status: str = "backlog",
        priority: str = "p2",
        labels: Iterable[str] = (),
        assignee: str | None = None,
        parent: str | None = None,
        custom: dict[str, Any] | None = None,
    ) -> Subject: ...

    def update(self, subject_id: str, **fields: Any) -> Subject: ...

    def set_status(self, subject_id: str, status: str, reason: str | None = None) -> Subject: ...

    def next(self) -> Subject | None: ...
