"""The normalized Subject every subject backend speaks (reference §D.1, §D.2).

Backends store subjects their own way (SQLite rows, Markdown files, Linear
issues); the daemon, the CLI and the workflow runner only ever see this one
shape. Parsing lives here, once, so that every backend rejects a bad status
or priority with the same one-line message naming the allowed values.

Statuses go out in kebab-case (``in-progress``) but the CLI help of the
original wrote ``in_progress``, so both are accepted, as are the legacy
aliases ``todo`` (backlog) and ``completed`` (done). Requirements keep their
richer native lifecycle in ``custom["native_status"]`` and map onto the
normalized statuses for scheduling.

The transition side effects (``apply_status``) are a pure function with the
clock passed in, so every backend shares them and tests need no backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from animus.errors import InvalidInput
from animus.plugin_runtime.subject_router import parse_kind

__all__ = [
    "STATUSES",
    "PRIORITIES",
    "REQUIREMENT_STATUSES",
    "REQUIREMENT_TO_STATUS",
    "DEFAULT_BLOCKED_REASON",
    "Subject",
    "Clock",
    "utc_now",
    "format_timestamp",
    "parse_status",
    "parse_priority",
    "parse_kind",
    "resolve_status",
    "split_subject_id",
    "qualify",
    "apply_status",
]

STATUSES = ("backlog", "ready", "in-progress", "blocked", "done", "cancelled")
PRIORITIES = ("p0", "p1", "p2", "p3")
DEFAULT_BLOCKED_REASON = "Blocked by status update"

_STATUS_ALIASES = {
    "in_progress": "in-progress",
    "inprogress": "in-progress",
    "todo": "backlog",
    "completed": "done",
    "canceled": "cancelled",
}
# Legacy task priorities (§D.1) map onto the p-buckets.
_PRIORITY_ALIASES = {"critical": "p0", "high": "p1", "medium": "p2", "low": "p3"}

REQUIREMENT_STATUSES = (
    "draft",
    "refined",
    "planned",
    "in-progress",
    "done",
    "po-review",
    "em-review",
    "needs-rework",
    "approved",
    "implemented",
    "deprecated",
)
# Why these targets: a requirement is schedulable work once planned (and
# again when it needs rework); reviews are still in flight; done, approved
# and implemented all mean nobody has to work on it any more.
REQUIREMENT_TO_STATUS: Mapping[str, str] = {
    "draft": "backlog",
    "refined": "backlog",
    "planned": "ready",
    "in-progress": "in-progress",
    "done": "done",
    "po-review": "in-progress",
    "em-review": "in-progress",
    "needs-rework": "ready",
    "approved": "done",
    "implemented": "done",
    "deprecated": "cancelled",
}
# A normalized status written to a requirement picks this native one;
# blocked has none, so the previous native status is kept.
_STATUS_TO_REQUIREMENT = {
    "backlog": "draft",
    "ready": "planned",
    "in-progress": "in-progress",
    "done": "done",
    "cancelled": "deprecated",
}

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: sorts as text, which SQLite relies on."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def _one_of(what: str, value: object, allowed: Iterable[str]) -> InvalidInput:
    return InvalidInput(f"invalid {what} {value!r}: expected one of {', '.join(allowed)}")


def parse_status(value: object) -> str:
    """Normalize a status spelling; raise naming the bad value and the allowed ones."""
    text = str(value).strip().lower()
    text = _STATUS_ALIASES.get(text, text)
    if text not in STATUSES:
        raise _one_of("status", value, STATUSES)
    return text


def parse_priority(value: object) -> str:
    text = str(value).strip().lower()
    text = _PRIORITY_ALIASES.get(text, text)
    if text not in PRIORITIES:
        raise _one_of("priority", value, PRIORITIES)
    return text


def resolve_status(kind: str, value: object) -> tuple[str, str | None]:
    """Return ``(normalized, native)`` for a status given to a backend of ``kind``.

    For requirements a native status (``po-review``) is accepted and kept;
    for every other kind ``native`` is None.
    """
    if kind != "requirement":
        return parse_status(value), None
    text = str(value).strip().lower().replace("_", "-")
    if text in REQUIREMENT_TO_STATUS:
        return REQUIREMENT_TO_STATUS[text], text
    try:
        normalized = parse_status(value)
    except InvalidInput:
        allowed = list(STATUSES) + [s for s in REQUIREMENT_STATUSES if s not in STATUSES]
        raise _one_of("requirement status", value, allowed) from None
    return normalized, _STATUS_TO_REQUIREMENT.get(normalized)


def split_subject_id(value: str) -> tuple[str | None, str]:
    """``task:TASK-001`` → ``("task", "TASK-001")``; a bare id has no kind."""
    text = str(value).strip()
    if ":" in text:
        kind, native = text.split(":", 1)
        return kind, native
    return None, text


def qualify(kind: str, native_id: str) -> str:
    return f"{kind}:{native_id}"


@dataclass(frozen=True)
class Subject:
    """One unit of work as every backend reports it (the wire shape of §D.1)."""

    id: str
    kind: str
    title: str
    description: str = ""
    status: str = "backlog"
    priority: str = "p2"
    labels: tuple[str, ...] = ()
    assignee: str | None = None
    parent: str | None = None
    children: tuple[str, ...] = ()
    url: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    blocked_reason: str | None = None
    blocked_at: str | None = None
    custom: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        kind, native = split_subject_id(self.id)
        if kind != self.kind or not native:
            raise InvalidInput(f"subject id {self.id!r} must have the form '{self.kind}:<id>'")
        if not str(self.title).strip():
            raise InvalidInput(f"subject {self.id} needs a non-empty title")
        object.__setattr__(self, "status", parse_status(self.status))
        object.__setattr__(self, "priority", parse_priority(self.priority))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "children", tuple(self.children))
        object.__setattr__(self, "custom", dict(self.custom))

    @property
    def native_id(self) -> str:
        return split_subject_id(self.id)[1]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["labels"] = list(self.labels)
        out["children"] = list(self.children)
        out["custom"] = dict(self.custom)
        return out

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> Subject:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(payload) - names)
        if unknown:
            raise InvalidInput(
                f"unknown subject field(s) {', '.join(unknown)}:"
                f" expected {', '.join(sorted(names))}"
            )
        data = dict(payload)
        data["labels"] = tuple(data.get("labels") or ())
        data["children"] = tuple(data.get("children") or ())
        data["custom"] = dict(data.get("custom") or {})
        return cls(**data)


def apply_status(
    subject: Subject, status: str, reason: str | None = None, now: datetime | None = None
) -> Subject:
    """The §D.2 side effects of a status change, as a pure function.

    Any status but ``blocked`` clears ``blocked_reason``/``blocked_at`` so a
    stale reason never survives the fix. ``blocked`` stamps ``blocked_at`` and
    falls back to ``"Blocked by status update"`` when no reason is given. The
    status must already be normalized (see ``resolve_status``).
    """
    stamp = format_timestamp(now or utc_now())
    if status == "blocked":
        return dataclasses.replace(
            subject,
            status=status,
            blocked_reason=reason or DEFAULT_BLOCKED_REASON,
            blocked_at=stamp,
            updated_at=stamp,
        )
    return dataclasses.replace(
        subject, status=status, blocked_reason=None, blocked_at=None, updated_at=stamp
    )
