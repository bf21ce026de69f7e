"""Delivery after a run's last phase: commit, merge, pull request, cleanup.

It runs once every phase is done: the runner records ``delivery.state:
pending`` in the same transaction as the last phase's result, so a retried
delivery never re-runs a phase. Every step is idempotent, so a delivery cut
short by a crash, or refused and later resumed (``animus workflow resume
<id> --force``), is simply run again from the top:

1. **commit** what the run left uncommitted (``commit_all``), unless
   ``--no-auto-commit-before-merge``; nothing left, nothing committed;
2. **merge** into the target branch with ``auto_merge`` (``merge_branch``):
   a branch already merged changes nothing;
3. **pull request** with ``create_pr``: push, then open it, or find the one
   already open; its number, URL and the branch go onto the task
   (``custom.pr_number``, ``custom.pr_url``, ``custom.branch``);
4. **cleanup**: when ``worktree.cleanup`` and ``cleanup_worktree`` allow it
   and nothing is left uncommitted, the teardown command, then the worktree
   is removed; the branch always stays.

Without a ``post_success.merge`` block (and no ``--auto-merge`` or
``--auto-pr``) only step 4 runs: a worktree holding the run's uncommitted
work is kept. A refusal (a ``DeliveryBlocked`` reason, or a git, GitHub or
subject-backend error) changes nothing on the target and returns the blocked
reason with its fix; ``merge_blocked`` carries the stable reason word. A
delivery that is done returns its final record instead of writing it: the
runner writes it with the run's end, in one transaction.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from typing import Any

from animus.errors import AnimusError, InvalidInput
from animus.git import MergeSpec, PullRequest, commit_all, merge_branch, push_and_open_pr, remove_after_success
from animus.git.provision import provisioned_paths
from animus.git.repo import changed_paths, rev_parse
from animus.workflow.git_settings import GitSettings, effective_merge
from animus.workflow.model import WorkflowDefinition
from animus.workflow.remote.ray_config import is_loopback_host
from animus.workflow.run_context import RunContext
from animus.workflow.store import WorkflowRow
from animus.workflow.run_worktree import TEARDOWN_PHASE, Placement, run_hook, task_label

__all__ = ["deliver", "leftovers"]

_DONE = {"merge": "merged", "squash": "squash-merged", "rebase": "rebased and fast-forwarded"}


def deliver(ctx: RunContext, wf: WorkflowRow, definition: WorkflowDefinition, placement: Placement,
            settings: GitSettings, record: Callable[..., None]) -> tuple[str | None, dict[str, Any]]:
    """Deliver the run (see the module doc): (None, the delivery's final record, to be written with
    the run's end) when done, else (the one-line blocked reason, what was recorded)."""
    wt = placement.worktree
    if wt is None:  # the project root, or a worktree already delivered and removed (a crash after it)
        return None, dict(wf.get("delivery") or {}, state="done")
    merge = effective_merge(definition.merge, settings.flags)
    out: dict[str, Any] = {"state": "done", "branch": wt.branch}
    try:
        if merge is not None:
            _deliver(ctx, wf, definition, placement, merge, settings, out)
            record(delivery=out | {"state": "pending"})  # what is done so far, should cleanup be cut short
        _cleanup(ctx, definition, placement, merge, settings, record)
    except (AnimusError, OSError) as exc:
        reason = exc.one_line() if isinstance(exc, AnimusError) else f"delivery failed: {exc}"
        word = str(getattr(exc, "reason", "") or getattr(exc, "code", "os_error"))
        blocked = out | {"state": "blocked", "reason": word, "message": reason}
        record(delivery=blocked)
        ctx.publish("workflow", "merge_blocked", "error", reason=word, branch=wt.branch,
                    target=merge.target_branch if merge else None, message=reason)
        return reason, blocked
    return None, out


def _deliver(ctx: RunContext, wf: WorkflowRow, definition: WorkflowDefinition, placement: Placement,
             merge: MergeSpec, settings: GitSettings, out: dict[str, Any]) -> None:
    wt, task = placement.worktree, task_label(wf)
    assert wt is not None and placement.worktrees is not None
    if settings.flags.auto_commit_before_merge is not False:
        sha = commit_all(wt.path, workflow_id=ctx.wf_id, task_id=task)
        if sha:
            ctx.publish("workflow", "changes_committed", commit=sha, branch=wt.branch,
                        message=f"committed what the run left in {wt.path} onto {wt.branch} ({sha[:10]})")
    out["commit"] = rev_parse(wt.path, "HEAD")
    if merge.auto_merge:
        done = merge_branch(placement.worktrees, wt.branch, target=merge.target_branch, strategy=merge.strategy,
                            workflow_id=ctx.wf_id, task_id=task, worktree=wt.path)
        out["merge"] = {"strategy": done.strategy.value, "target": done.target, "previous": done.previous,
                        "merged": done.merged, "already_merged": done.already_merged}
        what = (f"{wt.branch} was already in {done.target}" if done.already_merged else
                f"{_DONE[done.strategy.value]} {wt.branch} into {done.target} ({done.merged[:10]})")
        ctx.publish("workflow", "branch_merged", branch=wt.branch, target=done.target, strategy=done.strategy.value,
                    commit=done.merged, already_merged=done.already_merged, message=what)
    if merge.create_pr:
        spec = merge.create_pr
        _check_api_base(spec.api_base or os.environ.get("GITHUB_API_URL"), ctx.wf_id)
        title, body = _pr_text(wf, definition, ctx.wf_id, wt.branch)
        pr = push_and_open_pr(wt.path, wt.branch, base=merge.target_branch, title=title, body=body,
                              remote=spec.remote, repository=spec.repository, api_base=spec.api_base, draft=spec.draft)
        out["pr"] = pr.as_dict()
        ctx.publish("workflow", "pr_opened", pr_number=pr.number, url=pr.url, branch=wt.branch,
                    base=merge.target_branch, created=pr.created,
                    message=f"pull request #{pr.number} {'opened' if pr.created else 'already open'}: {pr.url}")
        _onto_task(ctx, wf, pr, wt.branch)


def _check_api_base(api: str | None, wf_id: str) -> None:
    """The token goes over https only (plain http to a loopback test server excepted)."""
    parsed = urllib.parse.urlsplit(api or "")
    if parsed.scheme == "http" and not is_loopback_host(parsed.hostname or ""):
        raise InvalidInput(f"the GitHub API base {api} is plain http: the token would cross the network "
                           "unencrypted", fix="use https:// in create_pr.api_base (or GITHUB_API_URL), then "
                                              f"animus workflow resume {wf_id} --force")


def _pr_text(wf: WorkflowRow, definition: WorkflowDefinition, wf_id: str, branch: str) -> tuple[str, str]:
    subject = wf.get("subject") or {}
    task, title = task_label(wf), str(subject.get("title") or "").strip()
    head = f"{task}: {title or definition.id}" if task else (title or f"{definition.id} ({wf_id})")
    body = [f"Task {task}: {title}" if task else f"Ad-hoc run: {title or wf_id}"]
    if subject.get("description"):
        body.append(str(subject["description"])[:4000])
    body.append(f"---\nOpened by Animus: workflow `{definition.id}`, run `{wf_id}`, branch `{branch}`.")
    return head[:250], "\n\n".join(body)


def _onto_task(ctx: RunContext, wf: WorkflowRow, pr: PullRequest, branch: str) -> None:
    """The pull request's number, URL and branch, onto the task's custom fields (a merge of keys).

    A backend that is down blocks the delivery (resuming retries it); one that
    has no custom fields (Linear) refuses for good: the run keeps them, a
    warning says so."""
    if not (wf.get("subject_id") and wf.get("subject_kind")):
        return
    fields = {"custom": {"pr_number": pr.number, "pr_url": pr.url, "branch": branch}}
    try:
        ctx.control().call("subject/call", {"kind": wf["subject_kind"], "verb": "update",
                                            "params": {"id": wf["subject_id"], "fields": fields}}, timeout=15)
    except InvalidInput as exc:
        ctx.publish("workflow", "task_fields_not_stored", "warn", subject_id=wf["subject_id"], error=exc.message,
                    message=f"pull request #{pr.number} is on the run, but {wf['subject_id']} cannot store it: "
                            f"{exc.message}")


def leftovers(path: Any) -> list[str]:
    """What removing the worktree would lose: changes, untracked files (what provisioning brought excepted)."""
    brought = provisioned_paths(path)
    return [p for p in changed_paths(path, untracked=True)
            if p.rstrip("/") not in brought and not any(p.startswith(b + "/") for b in brought)]


def _cleanup(ctx: RunContext, definition: WorkflowDefinition, placement: Placement, merge: MergeSpec | None,
             settings: GitSettings, record: Callable[..., None]) -> None:
    wt, worktrees = placement.worktree, placement.worktrees
    assert wt is not None and worktrees is not None
    kept = None
    left = leftovers(wt.path)
    if not remove_after_success(definition.worktree, merge):
        kept = "cleanup is off for this workflow"
    elif left:
        kept = (f"it holds uncommitted work ({', '.join(left[:3])}{' …' if len(left) > 3 else ''}); "
                f"commit it from there, or discard it: git worktree remove --force {wt.path}")
    elif settings.setup.teardown:
        code, why = run_hook(ctx, settings.setup.teardown, placement.task_root, settings.setup.teardown_timeout_secs,
                             TEARDOWN_PHASE)
        kept = f"the teardown command {why}; run it there, then git worktree remove {wt.path}" if code else None
    if kept:
        ctx.publish("workflow", "worktree_kept", "warn" if left or "teardown" in kept else "info",
                    path=str(wt.path), branch=wt.branch, message=f"kept worktree {wt.path}: {kept}")
        return
    worktrees.remove(ctx.wf_id)
    record(worktree=placement.record | {"removed": True})
    ctx.publish("workflow", "worktree_removed", path=str(wt.path), branch=wt.branch,
                message=f"removed worktree {wt.path}; branch {wt.branch} kept")
