"""animus workflow: run, list, get, resume, cancel, approve, reject, validate.

Control methods workflow/run|list|get|resume|cancel|approve|reject, served by
the workflows supervisor. ``validate`` runs locally on the project's YAML.
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from animus.cli import context
from animus.cli.output import echo, emit_json, guard
from animus.errors import InvalidInput

app = typer.Typer(help="Run and inspect workflows.", no_args_is_help=True)
JSON = typer.Option(False, "--json")


def _id(positional: Optional[str], option: Optional[str]) -> str:
    value = positional or option
    if not value:
        raise InvalidInput("give the workflow id (animus workflow get <id>, or --id <id>)")
    return value


@app.command()
def run(task_id: Optional[str] = typer.Option(None, "--task-id", help="Task to run it on, e.g. TASK-001."),
        workflow: Optional[str] = typer.Option(None, "--workflow", "--workflow-ref", help="Workflow id (default: the default workflow)."),
        title: Optional[str] = typer.Option(None, "--title", help="Run on an ad-hoc subject instead of a task."),
        as_json: bool = JSON) -> None:
    """Start a workflow run (queued beyond the concurrency limit)."""

    def body() -> int:
        if not task_id and not title:
            raise InvalidInput("give --task-id (or --title for an ad-hoc run)")
        result = context.call("workflow/run", {"task_id": task_id, "workflow_ref": workflow, "title": title}, timeout=30)
        if as_json:
            emit_json("animus.workflow.run.v1", result)
        else:
            echo(f"workflow {result['workflow_id']} {result['status']} ({result['workflow_ref']} on {result.get('subject_id')})")
            echo(f"watch it: animus daemon stream --workflow {result['workflow_id']} --pretty")
        return 0

    guard(as_json, body)


@app.command("list")
def list_cmd(status: Optional[str] = typer.Option(None, "--status"),
             limit: int = typer.Option(50, "--limit"), task_id: Optional[str] = typer.Option(None, "--task-id"),
             as_json: bool = JSON) -> None:
    """Workflows, newest first."""

    def body() -> int:
        rows = context.call("workflow/list", {"status": status, "limit": limit, "task_id": task_id})
        if as_json:
            emit_json("animus.workflow.list.v1", {"workflows": rows})
        elif not rows:
            echo("no workflows")
        else:
            echo(f"{'ID':<14} {'STATUS':<10} {'WORKFLOW':<16} {'SUBJECT':<16} {'PHASE':<12} REASON")
            for r in rows:
                echo(f"{r['id']:<14} {r['status']:<10} {r['workflow_ref']:<16} {str(r.get('subject_id')):<16} "
                     f"{str(r.get('current_phase') or '-'):<12} {r.get('blocked_reason') or r.get('waiting') or ''}")
        return 0

    guard(as_json, body)


def _render(wf: dict[str, Any]) -> None:
    echo(f"workflow {wf['id']}  {wf['workflow_ref']} on {wf.get('subject_id')}")
    echo(f"status: {wf['status']}")
    for key in ("blocked_reason", "failure_reason", "waiting"):
        if wf.get(key):
            echo(f"{key}: {wf[key]}")
    _render_git(wf)
    usage = wf.get("usage") or {}
    if usage.get("input_tokens") or usage.get("cost_usd"):
        echo(f"usage: {usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens, "
             f"${usage.get('cost_usd') or 0:.4f}")
    task_usage = wf.get("task_usage") or {}
    if task_usage.get("input_tokens") or task_usage.get("cost_usd"):
        echo(f"task usage (all its workflows): {task_usage.get('input_tokens', 0)} in / "
             f"{task_usage.get('output_tokens', 0)} out tokens, ${task_usage.get('cost_usd') or 0:.4f}")
    echo("phases:")
    for ph in wf.get("phases", []):
        u = ph.get("usage") or {}
        cost = f" tokens={u.get('input_tokens', 0)}/{u.get('output_tokens', 0)} cost=${u.get('cost_usd') or 0:.4f}" if u else ""
        echo(f"  {ph['phase']:<14} {ph['status']:<11} attempts={ph.get('attempts', 0)} "
             f"idempotency={ph.get('idempotency')} {ph.get('verdict') or ''}{cost}")
        for att in ph.get("attempt_list", [])[-1:]:
            if att.get("output_tail"):
                for line in att["output_tail"].splitlines()[-5:]:
                    echo(f"      | {line}")


def _render_git(wf: dict[str, Any]) -> None:
    """Worktree, branch, commit, merge result and pull request (docs/worktrees.md)."""
    wt, out = wf.get("worktree") or {}, wf.get("delivery") or {}
    if wt.get("path"):
        echo(f"worktree: {wt['path']}" + (" (removed)" if wt.get("removed") else ""))
        echo(f"branch: {wt.get('branch')}" + (f" (from {str(wt['base'])[:10]})" if wt.get("base") else ""))
    if out.get("commit"):
        echo(f"commit: {out['commit']}")
    merge = out.get("merge") or {}
    if merge:
        done = "already merged" if merge.get("already_merged") else str(merge.get("merged", ""))[:10]
        echo(f"merge: {merge.get('strategy')} into {merge.get('target')}: {done}")
    if out.get("state") == "blocked":
        echo(f"delivery: blocked ({out.get('reason')})")
    pr = out.get("pr") or {}
    if pr:
        echo(f"pull request: #{pr.get('number')} {pr.get('url')}")


@app.command()
def get(workflow_id: Optional[str] = typer.Argument(None), id: Optional[str] = typer.Option(None, "--id"),
        as_json: bool = JSON) -> None:
    """A workflow with its status, blocked_reason, phases, attempts and outputs."""

    def body() -> int:
        wf = context.call("workflow/get", {"id": _id(workflow_id, id)})
        if as_json:
            emit_json("animus.workflow.get.v1", {"workflow": wf})
        else:
            _render(wf)
        return 0

    guard(as_json, body)


def _simple(verb: str, schema: str, extra: dict[str, Any] | None = None) -> Any:
    def command(workflow_id: Optional[str] = typer.Argument(None), id: Optional[str] = typer.Option(None, "--id"),
                force: bool = typer.Option(False, "--force", help="Operator override after a crash (resume only)."),
                phase: Optional[str] = typer.Option(None, "--phase", help="Phase (approve/reject)."),
                note: Optional[str] = typer.Option(None, "--note"), as_json: bool = JSON) -> None:
        def body() -> int:
            params = {"id": _id(workflow_id, id), "force": force, "phase": phase, "note": note, **(extra or {})}
            wf = context.call(f"workflow/{verb}", params, timeout=60)
            if as_json:
                emit_json(schema, {"workflow": wf})
            else:
                echo(f"workflow {wf['id']}: {wf['status']}" + (f" ({wf['blocked_reason']})" if wf.get("blocked_reason") else ""))
            return 0

        guard(as_json, body)

    return command


app.command("resume", help="Resume a blocked or failed workflow; --force after a crash-blocked phase.")(
    _simple("resume", "animus.workflow.resume.v1"))
app.command("cancel", help="Cancel a workflow (stops its runner: SIGTERM, then SIGKILL).")(
    _simple("cancel", "animus.workflow.cancel.v1"))
app.command("approve", help="Approve a manual phase.")(_simple("approve", "animus.workflow.approve.v1"))
app.command("reject", help="Reject a manual phase.")(_simple("reject", "animus.workflow.reject.v1"))


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
