"""animus subject: list, get, create, update, status, next — routed to subject plugins.

Control method subject/call: the daemon routes ``<kind>/<verb>`` to the
plugin that owns the kind (an exact kind beats a glob; the longest glob wins).
"""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

from animus.cli import context
from animus.cli.output import echo, emit_json, guard
from animus.errors import InvalidInput

app = typer.Typer(help="Tasks, requirements and other subjects, through their backends.", no_args_is_help=True)
JSON = typer.Option(False, "--json")
KIND = typer.Option("task", "--kind", help="Subject kind (task, requirement, linear.issue …).")


def _call(kind: str, verb: str, params: dict[str, Any]) -> Any:
    return context.call("subject/call", {"kind": kind, "verb": verb, "params": params}, timeout=20)


def _show(subject: dict[str, Any]) -> None:
    echo(f"{subject['id']}  [{subject.get('status')}] {subject.get('priority', '')}  {subject.get('title', '')}")
    if subject.get("blocked_reason"):
        echo(f"  blocked_reason: {subject['blocked_reason']}")


@app.command("list")
def list_cmd(kind: str = KIND, status: Optional[str] = typer.Option(None, "--status"),
             limit: Optional[int] = typer.Option(None, "--limit"), as_json: bool = JSON) -> None:
    """List subjects of a kind."""

    def body() -> int:
        items = _call(kind, "list", {k: v for k, v in {"status": status, "limit": limit}.items() if v is not None})
        if as_json:
            emit_json("animus.subject.list.v1", {"kind": kind, "subjects": items})
        elif not items:
            echo(f"no {kind} subjects")
        else:
            for item in items:
                _show(item)
        return 0

    guard(as_json, body)


@app.command()
def get(kind: str = KIND, id: str = typer.Option(..., "--id"), as_json: bool = JSON) -> None:
    """One subject."""

    def body() -> int:
        subject = _call(kind, "get", {"id": id})
        if as_json:
            emit_json("animus.subject.get.v1", {"subject": subject})
        else:
            _show(subject)
            if subject.get("description"):
                echo("")
                echo(subject["description"])
            for key in ("labels", "assignee", "url", "created_at", "updated_at"):
                if subject.get(key):
                    echo(f"{key}: {subject[key]}")
        return 0

    guard(as_json, body)


@app.command()
def create(kind: str = KIND, title: str = typer.Option(..., "--title"),
           status: str = typer.Option("backlog", "--status"), priority: str = typer.Option("p2", "--priority"),
           labels: str = typer.Option("", "--labels", help="Comma-separated."),
           body_text: str = typer.Option("", "--body", "--description"), as_json: bool = JSON) -> None:
    """Create a subject."""

    def body() -> int:
        params = {"title": title, "status": status, "priority": priority, "description": body_text,
                  "labels": [x.strip() for x in labels.split(",") if x.strip()]}
        subject = _call(kind, "create", params)
        if as_json:
            emit_json("animus.subject.create.v1", {"subject": subject})
        else:
            echo(f"created {subject['id']}")
        return 0

    guard(as_json, body)


@app.command()
def update(kind: str = KIND, id: str = typer.Option(..., "--id"),
           input_json: str = typer.Option(..., "--input-json", help='Fields to change, e.g. {"title": "…"}'),
           as_json: bool = JSON) -> None:
    """Change fields of a subject."""

    def body() -> int:
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

    guard(as_json, body)


@app.command()
def status(kind: str = KIND, id: str = typer.Option(..., "--id"), status: str = typer.Option(..., "--status"),
           reason: Optional[str] = typer.Option(None, "--reason"), as_json: bool = JSON) -> None:
    """Set a subject's status (backlog, ready, in-progress, blocked, done, cancelled)."""

    def body() -> int:
        subject = _call(kind, "status", {"id": id, "status": status, "reason": reason})
        if as_json:
            emit_json("animus.subject.status.v1", {"subject": subject})
        else:
            _show(subject)
        return 0

    guard(as_json, body)


@app.command("next")
def next_cmd(kind: str = KIND, as_json: bool = JSON) -> None:
    """The highest-priority ready subject (null if none)."""

    def body() -> int:
        subject = _call(kind, "next", {})
        if as_json:
            emit_json("animus.subject.next.v1", {"subject": subject})
        elif subject is None:
            echo(f"no ready {kind}")
        else:
            _show(subject)
        return 0

    guard(as_json, body)
