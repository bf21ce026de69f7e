"""Subject backends: the storage and routing layer (reference §D).

Everything a workflow works on is a *subject*, served by a subject-backend
plugin for its kind. This package holds what those plugins are built from:

- ``model``: the normalized ``Subject`` and the parsing of statuses,
  priorities, kinds and ids (one error wording for every backend);
- ``edits``: what create/update mean, shared by the stores;
- ``store``: ``SubjectStore`` on SQLite (the ``default``, ``requirements``
  and ``sqlite`` backends);
- ``markdown_store``: ``MarkdownStore``, tasks as Markdown files people edit;
- ``linear_client``: ``LinearClient``, Linear issues (kind ``linear.issue``);
- ``router``: ``SubjectRouter``, which plugin serves which kind.

All the backends offer the same methods (``backend.SubjectBackend``),
matching the plugin verbs ``<kind>/list|get|create|update|status|next``:
``list``, ``get``, ``create``, ``update``, ``set_status``, ``next``.
"""

from typing import TYPE_CHECKING

from animus.plugin_runtime.subject_router import Route, SubjectRouter

from .backend import SubjectBackend
from .linear_client import LinearClient
from .markdown_store import DEFAULT_DIRECTORY, MarkdownStore
from .model import (
    PRIORITIES,
    REQUIREMENT_STATUSES,
    STATUSES,
    Subject,
    apply_status,
    parse_kind,
    parse_priority,
    parse_status,
    resolve_status,
    split_subject_id,
)
from .store import SubjectStore

if TYPE_CHECKING:  # every backend offers the same surface; mypy holds them to it
    _BACKENDS: tuple[type[SubjectBackend], ...] = (SubjectStore, MarkdownStore, LinearClient)

__all__ = [
    "Subject",
    "STATUSES",
    "PRIORITIES",
    "REQUIREMENT_STATUSES",
    "apply_status",
    "parse_kind",
    "parse_priority",
    "parse_status",
    "resolve_status",
    "split_subject_id",
    "SubjectBackend",
    "SubjectStore",
    "MarkdownStore",
    "DEFAULT_DIRECTORY",
    "LinearClient",
    "SubjectRouter",
    "Route",
]
