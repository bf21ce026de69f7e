"""Bodies of ``animus workflow run|list|get|resume|cancel|approve|reject``, without Typer.

Shared by the Typer commands (``animus.cli.workflow``) and the fast path.
Control methods workflow/run|list|get|resume|cancel|approve|reject, served by
the workflows supervisor.
"""

from __future__ import annotations


from animus.cli import context
from animus.cli.output import echo, emit_json
from animus.errors import InvalidInput

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["run", "list_workflows", "get", "render", "resume", "cancel", "approve", "reject"]


def _id(positional: str | None, option: str | None) -> str:
    value = positional or option
    if not value:
        raise InvalidInput("give the workflow id (animus workflow get <id>, or --id <id>)")
    return value


def run(task_id: str | None = None, workflow: str | None = None, title: str | None = None,
        as_json: bool = False) -> int:
    if not task_id and not title:
        raise InvalidInput("give --task-id (or --title for an ad-hoc run)")
    result = context.call("workflow/run", {"task_id": task_id, "workflow_ref": workflow, "title": title}, timeout=30)
    if as_json:
        emit_json("animus.workflow.run.v1", result)
    else:
        echo(f"workflow {result['workflow_id']} {result['status']} ({result['workflow_ref']} on {result.get('subject_id')})")
        echo(f"watch it: animus daemon stream --workflow {result['workflow_id']} --pretty")
    return 0


def list_workflows(status: str | None = None, limit: int = 50, task_id: str | None = None,
                   as_json: bool = False) -> int:
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


def render(wf: dict[str, Any]) -> None:
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


def get(workflow_id: str | None = None, id: str | None = None, as_json: bool = False) -> int:
    wf = context.call("workflow/get", {"id": _id(workflow_id, id)})
    if as_json:
        emit_json("animus.workflow.get.v1", {"workflow": wf})
    else:
        render(wf)
    return 0


def _simple(verb: str, workflow_id: str | None, id: str | None, force: bool, phase: str | None,
            note: str | None, as_json: bool) -> int:
    params = {"id": _id(workflow_id, id), "force": force, "phase": phase, "note": note}
    wf = context.call(f"workflow/{verb}", params, timeout=60)
    if as_json:
        emit_json(f"animus.workflow.{verb}.v1", {"workflow": wf})
    else:
        echo(f"workflow {wf['id']}: {wf['status']}" + (f" ({wf['blocked_reason']})" if wf.get("blocked_reason") else ""))
    return 0


def resume(workflow_id: str | None = None, id: str | None = None, force: bool = False, phase: str | None = None,
           note: str | None = None, as_json: bool = False) -> int:
    return _simple("resume", workflow_id, id, force, phase, note, as_json)


def cancel(workflow_id: str | None = None, id: str | None = None, force: bool = False, phase: str | None = None,
           note: str | None = None, as_json: bool = False) -> int:
    return _simple("cancel", workflow_id, id, force, phase, note, as_json)


def approve(workflow_id: str | None = None, id: str | None = None, force: bool = False, phase: str | None = None,
            note: str | None = None, as_json: bool = False) -> int:
    return _simple("approve", workflow_id, id, force, phase, note, as_json)


def reject(workflow_id: str | None = None, id: str | None = None, force: bool = False, phase: str | None = None,
           note: str | None = None, as_json: bool = False) -> int:
    return _simple("reject", workflow_id, id, force, phase, note, as_json)
