"""A git worktree per workflow run, under ``<scope>/worktrees/<workflow-id>``.

Runs never share a worktree: the directory is named by the workflow id, and
its branch is ``animus/<task-id>`` (``animus/<workflow-id>`` with no task,
sanitised by :mod:`animus.git.names`), cut from ``base_ref``, else the target
branch when it exists, else the project's ``HEAD``.

Decisions, so a run can always carry on where it stopped:

* **Idempotent create.** A resumed, retried or forced run of the same
  workflow gets the worktree it already has, uncommitted edits and all
  (``created=False``). If its directory was deleted, it is made again on the
  run's own branch, so committed work is never orphaned. Which branch belongs
  to which workflow is recorded in the repository's config, where git keeps
  per-branch settings (``branch.<name>.animus-workflow``); deleting the branch
  deletes the record.
* **Suffix, never steal.** A new workflow for a task whose branch already
  exists (an earlier run's, or the operator's) gets ``animus/<task>-2``,
  ``-3`` … The earlier branch is left as it is.
* **A half-made worktree is redone.** ``git worktree add`` marks its entry
  ``locked initializing`` until the checkout is complete; one killed midway
  is removed and made again.
* **Removal keeps the branch.** ``remove`` is ``git worktree remove --force``
  (untracked files in it go too) and ``git worktree prune``.
* :meth:`Worktrees.prune` is the start-up cleanup: it removes every managed
  worktree whose workflow id is not in ``keep`` and any scratch worktree a
  killed merge left behind, and never touches one in ``keep``.

Every operation here runs under the repository's :class:`RepoLock`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection, Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from animus.errors import Conflict, InvalidInput
from animus.git.lock import RepoLock
from animus.git.names import check_workflow_id, run_branch, suffixed
from animus.git.repo import (
    GitError,
    NotARepository,
    WorktreeEntry,
    branch_exists,
    git,
    list_worktree_entries,
    rev_parse,
)
from animus.git.spec import WorktreeMode, WorktreeSpec

__all__ = [
    "SCRATCH_PREFIX",
    "Worktree",
    "WorktreeConflict",
    "Worktrees",
    "phase_uses_worktree",
    "run_uses_worktree",
]

SCRATCH_PREFIX = ".merge-"  # scratch worktrees of delivery live beside the runs' ones
_OWNER_KEY = "animus-workflow"


class WorktreeConflict(Conflict):
    """The run's worktree path is taken by something that is not its worktree."""


@dataclass(frozen=True)
class Worktree:
    workflow_id: str
    path: Path
    branch: str
    head: str | None
    created: bool = False  # True only on the call that made it


@dataclass(frozen=True)
class Worktrees:
    """The managed worktrees of one repository.

    ``project_root`` is the operator's working copy (the git common root);
    ``root`` is ``<scope>/worktrees``; ``lock`` the repository lock.
    """

    project_root: Path
    root: Path
    lock: RepoLock

    def path_for(self, workflow_id: str) -> Path:
        return self.root / check_workflow_id(workflow_id)

    # queries -----------------------------------------------------------------

    def _entries(self) -> dict[str, WorktreeEntry]:
        root = self.root.resolve()
        return {e.path.name: e for e in list_worktree_entries(self.project_root)
                if e.path.parent == root or e.path.resolve().parent == root}

    def owners(self) -> dict[str, str]:
        """Branch → workflow id, as recorded when each run's branch was made."""
        out = git(self.project_root, "config", "--get-regexp", rf"^branch\..*\.{_OWNER_KEY}$", check=False)
        pairs = (line.partition(" ") for line in out.stdout.splitlines())
        return {key[len("branch."): -len(_OWNER_KEY) - 1]: value.strip() for key, _, value in pairs}

    def owned_branch(self, workflow_id: str) -> str | None:
        """The branch recorded for ``workflow_id``, whether or not it still exists."""
        return next((b for b, wf in self.owners().items() if wf == workflow_id), None)

    def get(self, workflow_id: str) -> Worktree | None:
        entry = self._entries().get(check_workflow_id(workflow_id))
        if entry is None or entry.prunable or entry.branch is None:
            return None
        return Worktree(workflow_id, entry.path, entry.branch, entry.head)

    def list_managed(self) -> list[Worktree]:
        """The runs' worktrees (scratch ones excluded), by workflow id."""
        return [Worktree(name, e.path, e.branch or "", e.head) for name, e in sorted(self._entries().items())
                if not name.startswith(".") and not e.prunable]

    # create ----------------------------------------------------------------------

    def create(self, workflow_id: str, *, task_id: str | None = None, base_ref: str | None = None,
               target_branch: str = "main") -> Worktree:
        """The run's worktree, made if needed (see the module doc for the rules)."""
        path = self.path_for(workflow_id)
        with self.lock:
            existing = self._reuse(workflow_id, path)
            if existing is not None:
                return existing
            self._clear_leftover(path)
            branch = self.owned_branch(workflow_id)
            self.root.mkdir(parents=True, exist_ok=True)
            if branch and branch_exists(self.project_root, branch):
                git(self.project_root, "worktree", "add", "--quiet", str(path), branch)
            else:
                base = self._base(base_ref, target_branch)
                branch = branch or self._free_branch(run_branch(task_id, workflow_id))
                git(self.project_root, "config", f"branch.{branch}.{_OWNER_KEY}", workflow_id)
                git(self.project_root, "worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), base)
            return Worktree(workflow_id, path, branch, rev_parse(path, "HEAD"), created=True)

    def _reuse(self, workflow_id: str, path: Path) -> Worktree | None:
        entry = self._entries().get(path.name)
        if entry is None:
            return None
        if entry.prunable:  # its directory is gone: forget it, make it again
            git(self.project_root, "worktree", "prune")
            return None
        if entry.locked == "initializing":  # `worktree add` was killed before its checkout finished
            self._drop(path)
            return None
        owned = self.owned_branch(workflow_id)
        if entry.branch is None or entry.branch != owned:
            raise WorktreeConflict(
                f"{path} is on {entry.branch or 'a detached HEAD'}, not on its run's branch {owned}",
                fix=f"git -C {path} switch {owned}" if owned else f"inspect {path}, then git worktree remove {path}")
        return Worktree(workflow_id, entry.path, entry.branch, entry.head, created=False)

    def _clear_leftover(self, path: Path) -> None:
        if not path.exists() and not path.is_symlink():
            return
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
            return
        raise WorktreeConflict(f"{path} exists but is not a worktree of {self.project_root}",
                               fix=f"look inside, then move it away: mv {path} {path}.old")

    def _base(self, base_ref: str | None, target_branch: str) -> str:
        if base_ref:
            sha = rev_parse(self.project_root, base_ref)
            if sha is None:
                raise InvalidInput(f"base_ref '{base_ref}' names no commit in {self.project_root}",
                                   fix=f"git -C {self.project_root} branch --list, then set worktree.base_ref "
                                       "to an existing branch, tag or commit")
            return sha
        sha = rev_parse(self.project_root, f"refs/heads/{target_branch}") or rev_parse(self.project_root, "HEAD")
        if sha is None:
            raise InvalidInput(f"{self.project_root} has no commits yet, so there is nothing to branch from",
                               fix=f"git -C {self.project_root} commit --allow-empty -m 'initial commit'")
        return sha

    def _free_branch(self, branch: str) -> str:
        """The first of ``branch``, ``branch-2`` … that neither exists nor is promised to a run."""
        owned = self.owners()
        n = 1
        while suffixed(branch, n) in owned or branch_exists(self.project_root, suffixed(branch, n)):
            n += 1
        return suffixed(branch, n)

    # remove --------------------------------------------------------------------

    def remove(self, workflow_id: str) -> bool:
        """Remove the run's worktree (its branch stays); False when there was none."""
        path = self.path_for(workflow_id)
        with self.lock:
            return self._drop(path)

    def _drop(self, path: Path) -> bool:
        entry = self._entries().get(path.name)
        found = entry is not None and not entry.prunable
        if found:
            try:  # twice --force: also a locked (half-made) one
                git(self.project_root, "worktree", "remove", "--force", "--force", str(path))
            except GitError:
                pass  # e.g. a worktree holding submodules: delete the directory, prune the record
        if path.is_symlink() or path.is_file():
            path.unlink()
            found = True
        elif path.exists():
            shutil.rmtree(path)
            found = True
        git(self.project_root, "worktree", "prune")
        return found

    @contextmanager
    def scratch(self, commit: str) -> Iterator[Path]:
        """A detached worktree at ``commit`` for the duration of the block, then gone.

        Delivery merges here, never in a run's worktree nor in the operator's
        copy. The lock is held throughout; a scratch worktree a killed
        process left behind is removed by :meth:`prune`.
        """
        path = self.root / f"{SCRATCH_PREFIX}{os.getpid()}-{os.urandom(3).hex()}"
        with self.lock:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                git(self.project_root, "worktree", "add", "--quiet", "--detach", str(path), commit)
                yield path
            finally:
                self._drop(path)

    def prune(self, keep: Container[str]) -> list[str]:
        """Start-up cleanup: remove every managed worktree not in ``keep``; return their ids.

        ``keep`` is only asked ``in``, while the lock is held: it may answer live."""
        removed: list[str] = []
        with self.lock:
            names = set(self._entries())
            if self.root.is_dir():
                names |= {p.name for p in self.root.iterdir()}
            for name in sorted(names):
                if name in keep:
                    continue
                if name.startswith(SCRATCH_PREFIX):  # no merge runs while we hold the lock
                    self._drop(self.root / name)
                elif not name.startswith(".") and self._drop(self.root / name):
                    removed.append(name)
            git(self.project_root, "worktree", "prune")
        return removed


def run_uses_worktree(workflow: WorktreeSpec, in_git: bool, phases: Collection[WorktreeSpec] = ()) -> bool:
    """Whether a run gets a worktree: ``auto`` in a git project, ``required`` or a clear error."""
    required = workflow.mode is WorktreeMode.REQUIRED or any(p.mode is WorktreeMode.REQUIRED for p in phases)
    if required and not in_git:
        raise NotARepository("this workflow needs a worktree (worktree: required) but the project is not a "
                             "git repository", fix="git init && git commit --allow-empty -m init, "
                                                   "or set worktree: auto")
    if workflow.mode is WorktreeMode.SKIP:
        if required:
            raise InvalidInput("a phase has worktree: required but its workflow has worktree: skip",
                               fix="set the workflow's worktree to auto or required")
        return False
    return in_git


def phase_uses_worktree(run_has_worktree: bool, phase: WorktreeSpec | None) -> bool:
    """Whether a phase runs in the run's worktree (else in the project root)."""
    return run_has_worktree and (phase is None or phase.mode is not WorktreeMode.SKIP)
