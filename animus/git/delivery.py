"""Delivery: commit what a run left, merge its branch into the target branch.

:func:`commit_all` commits everything left in a run's worktree (except what
provisioning brought in) with Animus as author and committer and a message
naming the task and the workflow. It touches only the run's branch, so it
needs no repository lock.

:func:`merge_branch` never leaves a half-merged tree anywhere:

1. under the repository lock, read the target tip; refuse at once when the
   target branch is missing, or when it is checked out somewhere (the
   operator's copy or another worktree) that has tracked changes or untracked
   files in the way of the incoming paths;
2. merge in a **scratch detached worktree** at the target tip (at the branch
   tip for ``rebase``): ``merge --no-ff`` | ``merge --squash`` + ``commit`` |
   ``rebase``, with the repository's hooks; a conflict or a refusing hook
   raises and the scratch worktree is simply deleted;
3. publish the result: where the target is checked out, ``merge --ff-only``
   in that copy (which moves the branch and the files together, and refuses
   without touching anything if the copy changed meanwhile); elsewhere a
   compare-and-swap ``update-ref refs/heads/<target> <new> <old>``.

The lock is held from step 1 to 3, so merges of parallel runs into the same
target happen one after the other, each on the previous one's result; the
compare-and-swap still guards against a commit made outside Animus. The
run's branch is left as it is (with ``rebase`` the target gets rebased copies
of its commits). Each refusal is a :class:`~animus.git.errors.DeliveryBlocked`
subclass whose message names the reason and whose fix names the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from animus.git.errors import (
    DirtyCheckout,
    HookFailed,
    MergeConflict,
    TargetBranchMissing,
    TargetMoved,
    WorktreeInProgress,
    resume_hint,
)
from animus.git.provision import not_ignored, provisioned_paths
from animus.git.repo import (
    GitError,
    GitResult,
    changed_paths,
    checked_out_in,
    current_branch,
    git,
    last_line,
    rev_parse,
)
from animus.git.spec import Strategy
from animus.git.worktree import Worktrees

__all__ = ["HOOK_TIMEOUT", "Identity", "MergeResult", "commit_all", "merge_branch"]

_COMMIT_HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg")
_MERGE_HOOKS = ("pre-merge-commit", "prepare-commit-msg", "commit-msg")
_NO_RERERE = ("-c", "rerere.enabled=false")  # a recorded resolution must not hide a conflict
HOOK_TIMEOUT = 600.0  # git commands that run the repository's hooks (which may run a test suite)


@dataclass(frozen=True)
class Identity:
    """Who Animus's commits are by (author and committer)."""

    name: str = "Animus"
    email: str = "animus@localhost"

    def env(self) -> dict[str, str]:
        return {"GIT_AUTHOR_NAME": self.name, "GIT_AUTHOR_EMAIL": self.email,
                "GIT_COMMITTER_NAME": self.name, "GIT_COMMITTER_EMAIL": self.email}


@dataclass(frozen=True)
class MergeResult:
    strategy: Strategy
    target: str
    branch: str
    previous: str                   # the target's tip before
    merged: str                     # the target's tip after (== previous when already merged)
    commits: tuple[str, ...]        # commits the target gained, oldest first
    checkout: Path | None = None    # the copy of the target that was fast-forwarded, if any

    @property
    def already_merged(self) -> bool:
        return self.merged == self.previous


def _trailers(task_id: str | None, workflow_id: str | None) -> str:
    lines = ([f"Animus-Task: {task_id}"] if task_id else []) + ([f"Animus-Workflow: {workflow_id}"]
                                                                if workflow_id else [])
    return "\n\n" + "\n".join(lines) if lines else ""


def _hooks_present(cwd: Path, names: tuple[str, ...]) -> list[str]:
    hooks = cwd / git(cwd, "rev-parse", "--git-path", "hooks").stdout.strip()
    return [n for n in names if (hooks / n).is_file() and (hooks / n).stat().st_mode & 0o111]


def _refused(cwd: Path, result: GitResult, hooks: tuple[str, ...], action: str, fix: str) -> NoReturn:
    """A commit-making command failed without a conflict: blame a hook if one is installed."""
    present = _hooks_present(cwd, hooks)
    if present:
        raise HookFailed(present[0] if len(present) == 1 else "/".join(present), action,
                         result.stderr or result.stdout, fix)
    raise GitError(f"git {' '.join(result.args[3:])} failed in {cwd}: {last_line(result.stderr or result.stdout)}",
                   command=result.args, returncode=result.returncode, stderr=result.stderr, fix=fix)


def commit_all(worktree: Path, *, workflow_id: str, task_id: str | None = None, message: str | None = None,
               identity: Identity = Identity()) -> str | None:
    """Commit everything left in ``worktree``; the new sha, or None when nothing was left.

    ``message`` replaces the subject line; the trailers naming the task and
    the workflow are always added. A worktree in the middle of a merge or a
    rebase is refused (:class:`WorktreeInProgress`), never committed as is.
    """
    unmerged = [p for p in git(worktree, "diff", "--name-only", "-z", "--diff-filter=U").stdout.split("\0") if p]
    if unmerged:
        raise WorktreeInProgress(worktree, f"has unresolved conflicts in {', '.join(unmerged[:3])}", workflow_id)
    if current_branch(worktree) is None:
        raise WorktreeInProgress(worktree, "is not on a branch (a rebase in progress?)", workflow_id)
    # ignored paths need no exclusion, and naming one in a pathspec makes `git add` fail
    excluded = [f":(exclude,literal){p}" for p in not_ignored(worktree, provisioned_paths(worktree))]
    git(worktree, "add", "--all", "--", ".", *excluded)
    if git(worktree, "diff", "--cached", "--quiet", check=False).ok:
        return None
    subject = message or f"{task_id or workflow_id}: changes left by workflow {workflow_id}"
    body = "\n\nCommitted by Animus before delivery: the run ended with these changes uncommitted."
    out = git(worktree, "commit", "--quiet", "-m", subject + body + _trailers(task_id, workflow_id),
              check=False, env=identity.env(), timeout=HOOK_TIMEOUT)
    if not out.ok:
        _refused(worktree, out, _COMMIT_HOOKS, f"the commit of what workflow {workflow_id} left in {worktree}",
                 fix=f"make the hook pass: git -C {worktree} commit{resume_hint(workflow_id)}")
    return rev_parse(worktree, "HEAD")


@dataclass(frozen=True)
class _Job:
    """One merge request, with what the error messages need."""

    root: Path
    branch: str
    target: str
    strategy: Strategy
    tip: str
    workflow_id: str | None
    worktree: Path
    message: str
    identity: Identity

    def conflict(self, scratch: Path) -> None:
        out = git(scratch, "diff", "--name-only", "-z", "--diff-filter=U").stdout
        paths = [p for p in out.split("\0") if p]
        if paths:
            how = "rebase" if self.strategy is Strategy.REBASE else "merge"
            then = "git rebase --continue" if how == "rebase" else "commit"
            raise MergeConflict(self.branch, self.target, paths,
                                fix=f"git -C {self.worktree} {how} {self.target}, resolve, {then}"
                                    f"{resume_hint(self.workflow_id)}")

    def hook_fix(self) -> str:
        return f"make the hook pass for {self.branch} in {self.worktree} and commit{resume_hint(self.workflow_id)}"


def _merge(job: _Job, scratch: Path) -> str:
    out = git(scratch, *_NO_RERERE, "merge", "--no-ff", "--no-edit", "--quiet", "-m", job.message, job.tip,
              check=False, env=job.identity.env(), timeout=HOOK_TIMEOUT)
    if not out.ok:
        job.conflict(scratch)
        _refused(scratch, out, _MERGE_HOOKS, f"the merge commit of {job.branch} into {job.target}", job.hook_fix())
    return str(rev_parse(scratch, "HEAD"))


def _squash(job: _Job, scratch: Path) -> str:
    out = git(scratch, *_NO_RERERE, "merge", "--squash", "--quiet", job.tip, check=False)
    if not out.ok:
        job.conflict(scratch)
        raise GitError(f"git merge --squash {job.branch} failed: {last_line(out.stderr)}", command=out.args,
                       returncode=out.returncode, stderr=out.stderr, fix=job.hook_fix())
    if git(scratch, "diff", "--cached", "--quiet", check=False).ok:  # its changes are already there
        return str(rev_parse(scratch, "HEAD"))
    out = git(scratch, "commit", "--quiet", "-m", job.message, check=False, env=job.identity.env(),
              timeout=HOOK_TIMEOUT)
    if not out.ok:
        _refused(scratch, out, _COMMIT_HOOKS, f"the squash commit of {job.branch} onto {job.target}", job.hook_fix())
    return str(rev_parse(scratch, "HEAD"))


def _rebase(job: _Job, scratch: Path, onto: str) -> str:
    out = git(scratch, *_NO_RERERE, "rebase", "--quiet", "--no-autostash", "--no-autosquash", onto,
              check=False, env=job.identity.env(), timeout=HOOK_TIMEOUT)
    if not out.ok:
        job.conflict(scratch)
        _refused(scratch, out, ("pre-rebase",), f"rebasing {job.branch} onto {job.target}", job.hook_fix())
    return str(rev_parse(scratch, "HEAD"))


def _check_checkout(job: _Job, checkout: Path, old: str) -> None:
    """Refuse before touching anything if the target's checkout could not be fast-forwarded."""
    dirty = changed_paths(checkout)
    if dirty:
        raise DirtyCheckout(job.target, checkout, dirty, "uncommitted changes", job.workflow_id)
    incoming = set(git(checkout, "diff", "--name-only", "-z", f"{old}...{job.tip}").stdout.split("\0")) - {""}
    in_the_way = sorted(incoming & set(changed_paths(checkout, untracked=True)))
    if in_the_way:
        raise DirtyCheckout(job.target, checkout, in_the_way, "untracked files the merge would overwrite",
                            job.workflow_id)


def _publish(job: _Job, old: str, new: str) -> Path | None:
    """Move the target from ``old`` to ``new``, in its checkout if it has one (see the module doc)."""
    ref = f"refs/heads/{job.target}"
    checkout = checked_out_in(job.root, job.target)
    if checkout is None:
        out = git(job.root, "update-ref", "-m", f"animus: {job.strategy} {job.branch}", ref, new, old, check=False)
        if not out.ok:
            raise TargetMoved(job.target, job.workflow_id)
        return None
    _check_checkout(job, checkout, old)
    out = git(checkout, "merge", "--ff-only", "--no-autostash", "--quiet", new, check=False, timeout=HOOK_TIMEOUT)
    if not out.ok:
        if rev_parse(job.root, ref) != old:
            raise TargetMoved(job.target, job.workflow_id)
        raise DirtyCheckout(job.target, checkout, changed_paths(checkout, untracked=True) or ["?"],
                            "changes made during the merge", job.workflow_id)
    return checkout


def _default_message(root: Path, strategy: Strategy, branch: str, target: str, old: str, tip: str,
                     task_id: str | None, workflow_id: str | None) -> str:
    name = task_id or workflow_id or branch
    if strategy is Strategy.SQUASH:
        log = git(root, "log", "--reverse", "--format=- %s", f"{old}..{tip}").stdout.strip()
        return f"{name}: squash-merge {branch} into {target}\n\n{log}{_trailers(task_id, workflow_id)}"
    return f"Merge {branch} into {target} ({name}){_trailers(task_id, workflow_id)}"


def merge_branch(worktrees: Worktrees, branch: str, *, target: str = "main", strategy: Strategy = Strategy.MERGE,
                 workflow_id: str | None = None, task_id: str | None = None, worktree: Path | None = None,
                 message: str | None = None, identity: Identity = Identity()) -> MergeResult:
    """Merge ``branch`` into ``target`` with ``strategy`` (see the module doc).

    ``workflow_id`` and ``worktree`` only shape the fix commands in errors
    (the worktree defaults to wherever ``branch`` is checked out).
    """
    root = worktrees.project_root
    with worktrees.lock:
        old = rev_parse(root, f"refs/heads/{target}")
        if old is None:
            raise TargetBranchMissing(target, root, workflow_id)
        tip = rev_parse(root, f"refs/heads/{branch}")
        if tip is None:
            raise GitError(f"branch {branch} does not exist in {root}", fix=f"git -C {root} branch --list 'animus/*'")
        where = worktree or checked_out_in(root, branch) or root
        job = _Job(root, branch, target, strategy, tip, workflow_id, where,
                   message or _default_message(root, strategy, branch, target, old, tip, task_id, workflow_id),
                   identity)
        if git(root, "merge-base", "--is-ancestor", tip, old, check=False).ok:
            return MergeResult(strategy, target, branch, old, old, ())
        checkout = checked_out_in(root, target)
        if checkout is not None:
            _check_checkout(job, checkout, old)
        with worktrees.scratch(tip if strategy is Strategy.REBASE else old) as scratch:
            new = _rebase(job, scratch, old) if strategy is Strategy.REBASE else (
                _squash(job, scratch) if strategy is Strategy.SQUASH else _merge(job, scratch))
        if new == old:
            return MergeResult(strategy, target, branch, old, old, ())
        commits = tuple(git(root, "rev-list", "--reverse", f"{old}..{new}").stdout.split())
        updated = _publish(job, old, new)
    return MergeResult(strategy, target, branch, old, new, commits, updated)
