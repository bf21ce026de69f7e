"""What ``create`` and ``update`` mean, once for every backend.

The SQLite store and the Markdown store persist differently but must agree
on the semantics of an edit: which fields may change, how labels are
cleaned, that ``custom`` is merged, that a status change carries the §D.2
side effects and that a requirement keeps its native status. These are pure
functions over ``Subject`` with the time passed in; the stores only load,
call them and save.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from animus.errors import InvalidInput

from .model import Subject, apply_status, format_timestamp, parse_priority, qualify, resolve_status

__all__ = ["UPDATABLE_FIELDS", "clean_labels", "check_fields", "new_subject", "apply_update"]

UPDATABLE_FIELDS = (
    "title",
    "description",
    "status",
    "priority",
    "labels",
    "assignee",
    "parent",
    "url",
    "blocked_reason",
    "custom",
)

ParentResolver = Callable[[str | None], str | None]


def clean_labels(labels: Iterable[str] | str | None) -> tuple[str, ...]:
    """Strip, drop empties and duplicates, keep the caller's order."""
    if labels is None:
        return ()
    if isinstance(labels, str):
        labels = [labels]
    seen: dict[str, None] = {}
    for label in labels:
        text = str(label).strip()
        if text:
            seen.setdefault(text, None)
    return tuple(seen)


def check_fields(fields: Mapping[str, Any]) -> None:
    unknown = sorted(set(fields) - set(UPDATABLE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"cannot update field(s) {', '.join(unknown)}: expected {', '.join(UPDATABLE_FIELDS)}"
        )


def _title(kind: str, value: object) -> str:
    text = str(value or "").strip()
    if not text:
        raise InvalidInput(f"a {kind} needs a non-empty title")
    return text


def new_subject(
    kind: str,
    native_id: str,
    *,
    title: str,
    description: str = "",
    status: str = "backlog",
    priority: str = "p2",
    labels: Iterable[str] = (),
    assignee: str | None = None,
    parent: str | None = None,
    custom: Mapping[str, Any] | None = None,
    now: datetime,
) -> Subject:
    """A fresh subject; creating it ``blocked`` stamps the reason like a status change."""
    normalized, native_status = resolve_status(kind, status)
    extra = dict(custom or {})
    if native_status is not None:
        extra["native_status"] = native_status
    stamp = format_timestamp(now)
    subject = Subject(
        id=qualify(kind, native_id),
        kind=kind,
        title=_title(kind, title),
        description=str(description or ""),
        status="backlog",
        priority=parse_priority(priority),
        labels=clean_labels(labels),
        assignee=assignee or None,
        parent=parent,
        created_at=stamp,
        updated_at=stamp,
        custom=extra,
    )
    return apply_status(subject, normalized, None, now)


def apply_update(
    current: Subject,
    fields: Mapping[str, Any],
    now: datetime,
    resolve_parent: ParentResolver = lambda ref: ref,
) -> Subject:
    """Apply ``fields`` to ``current``; ``resolve_parent`` qualifies and checks a parent.

    ``custom`` is merged key by key (a key set to None is removed) so a caller
    cannot drop ``native_status`` by accident. ``blocked_reason`` alone only
    edits the reason of a subject that is already blocked.
    """
    check_fields(fields)
    changes: dict[str, Any] = {}
    if "title" in fields:
        changes["title"] = _title(current.kind, fields["title"])
    if "description" in fields:
        changes["description"] = str(fields["description"] or "")
    if "priority" in fields:
        changes["priority"] = parse_priority(fields["priority"])
    if "labels" in fields:
        changes["labels"] = clean_labels(fields["labels"])
    for key in ("assignee", "url"):
        if key in fields:
            changes[key] = fields[key] or None
    if "parent" in fields:
        parent = resolve_parent(fields["parent"] or None)
        if parent == current.id:
            raise InvalidInput(f"{current.id} cannot be its own parent")
        changes["parent"] = parent
    custom = dict(current.custom)
    for key, value in dict(fields.get("custom") or {}).items():
        if value is None:
            custom.pop(key, None)
        else:
            custom[key] = value
    subject = current
    if "status" in fields:
        normalized, native_status = resolve_status(current.kind, fields["status"])
        if native_status is not None:
            custom["native_status"] = native_status
        subject = apply_status(current, normalized, fields.get("blocked_reason"), now)
    elif fields.get("blocked_reason") is not None:
        if current.status != "blocked":
            raise InvalidInput(
                f"{current.id} is {current.status}, not blocked: set status blocked with the reason"
            )
        changes["blocked_reason"] = str(fields["blocked_reason"])
    changes["custom"] = custom
    changes["updated_at"] = format_timestamp(now)
    return dataclasses.replace(subject, **changes)
