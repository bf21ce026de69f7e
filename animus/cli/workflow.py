"""animus workflow: run, list, get, resume, cancel, approve, reject, validate.

Control methods workflow/run|list|get|resume|cancel|approve|reject, served by
the workflows supervisor (bodies in ``animus.cli.workflow_cmds``, shared with
the fast path). ``validate`` runs locally on the project's YAML.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from animus.cli import context, workflow_cmds
from animus.cli.output import echo, emit_json, guard

app = typer.Typer(help="Run and inspect workflows.", no_args_is_help=True)
JSON = typer.Option(False, "--json")


@app.command()
def run(task_id: Optional[str] = typer.Option(None, "--task-id", help="Task to run it on, e.g. TASK-001."),
        workflow: Optional[str] = typer.Option(None, "--workflow", "--workflow-ref", help="Workflow id (default: the default workflow)."),
        title: Optional[str] = typer.Option(None, "--title", help="Run on an ad-hoc subject instead of a task."),
        as_json: bool = JSON) -> None:
    """Start a workflow run (queued beyond the concurrency limit)."""
    guard(as_json, lambda: workflow_cmds.run(task_id, workflow, title, as_json))


@app.command("list")
def list_cmd(status: Optional[str] = typer.Option(None, "--status"),
             limit: int = typer.Option(50, "--limit"), task_id: Optional[str] = typer.Option(None, "--task-id"),
             as_json: bool = JSON) -> None:
    """Workflows, newest first."""
    guard(as_json, lambda: workflow_cmds.list_workflows(status, limit, task_id, as_json))


@app.command()
def get(workflow_id: Optional[str] = typer.Argument(None), id: Optional[str] = typer.Option(None, "--id"),
        as_json: bool = JSON) -> None:
    """A workflow with its status, blocked_reason, phases, attempts and outputs."""
    guard(as_json, lambda: workflow_cmds.get(workflow_id, id, as_json))


def _simple(verb: str) -> Any:
    body = getattr(workflow_cmds, verb)

    def command(workflow_id: Optional[str] = typer.Argument(None), id: Optional[str] = typer.Option(None, "--id"),
                force: bool = typer.Option(False, "--force", help="Operator override after a crash (resume only)."),
                phase: Optional[str] = typer.Option(None, "--phase", help="Phase (approve/reject)."),
                note: Optional[str] = typer.Option(None, "--note"), as_json: bool = JSON) -> None:
        guard(as_json, lambda: body(workflow_id, id, force, phase, note, as_json))

    return command


app.command("resume", help="Resume a blocked or failed workflow; --force after a crash-blocked phase.")(_simple("resume"))
app.command("cancel", help="Cancel a workflow (stops its runner: SIGTERM, then SIGKILL).")(_simple("cancel"))
app.command("approve", help="Approve a manual phase.")(_simple("approve"))
app.command("reject", help="Reject a manual phase.")(_simple("reject"))


@app.command()
def validate(as_json: bool = JSON) -> None:
    """Validate the project's workflow YAML (non-zero exit on the first error)."""

    def body() -> int:
        import os

        from animus.workflow.config import load_workflow_config

        cfg = load_workflow_config(context.scope().project_root, dict(os.environ))
        data: dict[str, Any] = {"valid": True, "sources": [str(s) for s in cfg.sources],
                "workflows": sorted(w for w in cfg.workflows), "phases": len(cfg.phases), "agents": len(cfg.agents)}
        if as_json:
            emit_json("animus.workflow.validate.v1", data)
        else:
            echo(f"workflow config valid: {len(data['workflows'])} workflow(s), {data['phases']} phase(s), "
                 f"{data['agents']} agent(s) from {', '.join(data['sources']) or 'the embedded defaults'}")
        return 0

    guard(as_json, body)
