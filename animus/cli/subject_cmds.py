"""Bodies of ``animus subject list|get|create|update|status|next``, without Typer.

Shared by the Typer commands (``animus.cli.subject``) and the fast path.
Control method subject/call: the daemon routes ``<kind>/<verb>`` to the
plugin that owns the kind.
"""

from __future__ import annotations


from animus.cli import context
from animus.cli.output import echo, emit_json
from animus.errors import InvalidInput

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["list_subjects", "get", "create", "update", "status", "next_subject"]


def _call(kind: str, verb: str, params: dict[str, Any]) -> Any:
    return context.call("subject/call", {"kind": kind, "verb": verb, "params": params}, timeout=20)


def _show(subject: dict[str, Any]) -> None:
    echo(f"{subject['id']}  [{subject.get('status')}] {subject.get('priority', '')}  {subject.get('title', '')}")
    if subject.get("blocked_reason"):
        echo(f"  blocked_reason: {subject['blocked_reason']}")


def list_subjects(kind: str = "task", status: str | None = None, limit: int | None = None,
                  as_json: bool = False) -> int:
    items = _call(kind, "list", {k: v for k, v in {"status": status, "limit": limit}.items() if v is not None})
    if as_json:
        emit_json("animus.subject.list.v1", {"kind": kind, "subjects": items})
    elif not items:
        echo(f"no {kind} subjects")
    else:
        for item in items:
            _show(item)
    return 0


def get(id: str, kind: str = "task", as_json: bool = False) -> int:
    subject = _call(kind, "get", {"id": id})
    if as_json:
        emit_json("animus.subject.get.v1", {"subject": subject})
        return 0
    _show(subject)
    if subject.get("description"):
        echo("")
        echo(subject["description"])
    for key in ("labels", "assignee", "url", "created_at", "updated_at"):
        if subject.get(key):
            echo(f"{key}: {subject[key]}")
    return 0


def create(title: str, kind: str = "task", status: str = "backlog", priority: str = "p2", labels: str = "",
           body_text: str = "", as_json: bool = False) -> int:
    params = {"title": title, "status": status, "priority": priority, "description": body_text,
              "labels": [x.strip() for x in labels.split(",") if x.strip()]}
    subject = _call(kind, "create", params)
    if as_json:
        emit_json("animus.subject.create.v1", {"subject": subject})
    else:
        echo(f"created {subject['id']}")
    return 0


def update(id: str, input_json: str, kind: str = "task", as_json: bool = False) -> int:
    import json

    try:
        fields = json.loads(input_json)
    except ValueError as exc:
        raise InvalidInput(f"--input-json is not valid JSON: {exc}") from None
    subject = _call(kind, "update", {"id": id, "fields": fields})
    if as_json:
        emit_json("animus.subject.update.v1", {"subject": subject})
    else:
        _show(subject)
    return 0


def status(id: str, status: str, kind: str = "task", reason: str | None = None, as_json: bool = False) -> int:
    subject = _call(kind, "status", {"id": id, "status": status, "reason": reason})
    if as_json:
        emit_json("animus.subject.status.v1", {"subject": subject})
    else:
        _show(subject)
    return 0


def next_subject(kind: str = "task", as_json: bool = False) -> int:
    subject = _call(kind, "next", {})
    if as_json:
        emit_json("animus.subject.next.v1", {"subject": subject})
    elif subject is None:
        echo(f"no ready {kind}")
    else:
        _show(subject)
    return 0
