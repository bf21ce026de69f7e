"""animus subject: list, get, create, update, status, next — routed to subject plugins.

Control method subject/call: the daemon routes ``<kind>/<verb>`` to the
plugin that owns the kind (an exact kind beats a glob; the longest glob wins).
The bodies are in ``animus.cli.subject_cmds`` (shared with the fast path).
"""

from __future__ import annotations

from typing import Optional

import typer

from animus.cli import subject_cmds
from animus.cli.output import guard

app = typer.Typer(help="Tasks, requirements and other subjects, through their backends.", no_args_is_help=True)
JSON = typer.Option(False, "--json")
KIND = typer.Option("task", "--kind", help="Subject kind (task, requirement, linear.issue …).")


@app.command("list")
def list_cmd(kind: str = KIND, status: Optional[str] = typer.Option(None, "--status"),
             limit: Optional[int] = typer.Option(None, "--limit"), as_json: bool = JSON) -> None:
    """List subjects of a kind."""
    guard(as_json, lambda: subject_cmds.list_subjects(kind, status, limit, as_json))


@app.command()
def get(kind: str = KIND, id: str = typer.Option(..., "--id"), as_json: bool = JSON) -> None:
    """One subject."""
    guard(as_json, lambda: subject_cmds.get(id, kind, as_json))


@app.command()
def create(kind: str = KIND, title: str = typer.Option(..., "--title"),
           status: str = typer.Option("backlog", "--status"), priority: str = typer.Option("p2", "--priority"),
           labels: str = typer.Option("", "--labels", help="Comma-separated."),
           body_text: str = typer.Option("", "--body", "--description"), as_json: bool = JSON) -> None:
    """Create a subject."""
    guard(as_json, lambda: subject_cmds.create(title, kind, status, priority, labels, body_text, as_json))


@app.command()
def update(kind: str = KIND, id: str = typer.Option(..., "--id"),
           input_json: str = typer.Option(..., "--input-json", help='Fields to change, e.g. {"title": "…"}'),
           as_json: bool = JSON) -> None:
    """Change fields of a subject."""
    guard(as_json, lambda: subject_cmds.update(id, input_json, kind, as_json))


@app.command()
def status(kind: str = KIND, id: str = typer.Option(..., "--id"), status: str = typer.Option(..., "--status"),
           reason: Optional[str] = typer.Option(None, "--reason"), as_json: bool = JSON) -> None:
    """Set a subject's status (backlog, ready, in-progress, blocked, done, cancelled)."""
    guard(as_json, lambda: subject_cmds.status(id, status, kind, reason, as_json))


@app.command("next")
def next_cmd(kind: str = KIND, as_json: bool = JSON) -> None:
    """The highest-priority ready subject (null if none)."""
    guard(as_json, lambda: subject_cmds.next_subject(kind, as_json))
