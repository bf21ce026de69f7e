"""Why delivery stopped: one exception per reason, each naming the fix.

Delivery (commit, merge into the target branch) refuses rather than leave a
half-merged tree, and the run then ends ``blocked``. The runner catches
:class:`DeliveryBlocked`, shows ``one_line()`` as the blocked reason and puts
``reason`` (a stable word) in the ``merge_blocked`` event. Every subclass is a
``Conflict`` for the CLI (exit code 4) and a :class:`GitError` for code that
only cares that git said no.
"""

from __future__ import annotations

from pathlib import Path

from animus.errors import ExitCode
from animus.git.repo import GitError

__all__ = [
    "DeliveryBlocked",
    "DirtyCheckout",
    "HookFailed",
    "MergeConflict",
    "TargetBranchMissing",
    "TargetMoved",
    "WorktreeInProgress",
    "resume_hint",
]


def resume_hint(workflow_id: str | None) -> str:
    """The tail of a fix: how to carry on once the operator has fixed things."""
    return f", then animus workflow resume {workflow_id} --force" if workflow_id else ""


def _listed(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


class DeliveryBlocked(GitError):
    """Delivery refused; nothing was changed on the target branch or in any checkout."""

    code = "conflict"
    exit_code = ExitCode.CONFLICT
    reason = "blocked"


class MergeConflict(DeliveryBlocked):
    reason = "merge_conflict"

    def __init__(self, branch: str, target: str, paths: list[str], fix: str) -> None:
        super().__init__(f"merging {branch} into {target} conflicts in {_listed(paths)}; {target} is unchanged",
                         fix=fix)
        self.paths = tuple(paths)


class DirtyCheckout(DeliveryBlocked):
    reason = "dirty_checkout"

    def __init__(self, target: str, checkout: Path, paths: list[str], why: str, workflow_id: str | None) -> None:
        super().__init__(
            f"{target} is checked out in {checkout} with {why} ({_listed(paths)}); nothing was merged",
            fix=f"commit or stash them (git -C {checkout} stash --include-untracked){resume_hint(workflow_id)}")
        self.checkout = checkout
        self.paths = tuple(paths)


class HookFailed(DeliveryBlocked):
    reason = "hook_failed"

    def __init__(self, hook: str, action: str, output: str, fix: str) -> None:
        lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
        said = f": {lines[-1][:200]}" if lines else ""
        super().__init__(f"the {hook} hook refused {action}{said}", fix=fix, stderr=output)
        self.hook = hook


class WorktreeInProgress(DeliveryBlocked):
    """The run's worktree is mid-merge or mid-rebase: committing it would commit conflict markers."""

    reason = "operation_in_progress"

    def __init__(self, worktree: Path, what: str, workflow_id: str | None) -> None:
        super().__init__(f"{worktree} {what}; nothing was committed",
                         fix=f"finish or abort it (git -C {worktree} status){resume_hint(workflow_id)}")


class TargetBranchMissing(DeliveryBlocked):
    reason = "target_missing"

    def __init__(self, target: str, root: Path, workflow_id: str | None) -> None:
        super().__init__(
            f"target branch '{target}' does not exist in {root}; nothing was merged",
            fix=f"git -C {root} branch {target} <start-commit>, or set post_success.merge.target_branch "
                f"to an existing branch{resume_hint(workflow_id)}")
        self.target = target


class TargetMoved(DeliveryBlocked):
    reason = "target_moved"

    def __init__(self, target: str, workflow_id: str | None) -> None:
        super().__init__(f"{target} moved while the merge was prepared (someone committed to it); "
                         f"nothing was merged",
                         fix=f"animus workflow resume {workflow_id} --force" if workflow_id else "merge again")
