"""The git layer: a worktree per run, delivery by commit, merge, push and pull request.

Layering: imports only ``animus.errors`` (and the standard library); git is
run as a subprocess, GitHub is spoken to with ``urllib``. The workflow runner
is the caller; ``docs/worktrees.md`` is the operator's view.

* :mod:`.repo` — the one way to run git, and repository questions;
* :mod:`.lock` — the per-repository, cross-process lock;
* :mod:`.names` — branch and directory names;
* :mod:`.worktree` — create / reuse / remove / prune a run's worktree;
* :mod:`.provision` — untracked files copied or linked into a new worktree;
* :mod:`.delivery` — commit what a run left, merge it into the target branch;
* :mod:`.github` — push, open a pull request;
* :mod:`.spec` — the YAML shapes (``worktree``, ``post_success.merge``, ``worktrees``).

Names are imported from their module on first use (PEP 562): a process that
needs only the YAML shapes (the daemon's root reads ``worktrees:``) does not
load delivery and GitHub's HTTP client with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from animus.git.delivery import Identity, MergeResult, commit_all, merge_branch
    from animus.git.errors import (
        DeliveryBlocked, DirtyCheckout, HookFailed, MergeConflict, TargetBranchMissing, TargetMoved,
        WorktreeInProgress,
    )
    from animus.git.github import (
        GitHubAuthError, GitHubError, GitHubNotFound, GitHubUnavailable, MissingToken, PullRequest,
        open_pull_request, push_and_open_pr, push_branch,
    )
    from animus.git.lock import LockTimeout, RepoLock
    from animus.git.provision import Provisioned, mark_setup_done, provision, setup_done
    from animus.git.repo import GitError, NotARepository, has_changes, is_git_repo
    from animus.git.spec import (
        MergeSpec, PullRequestSpec, SpecError, Strategy, WorktreeMode, WorktreeSetup, WorktreeSpec,
        parse_merge, parse_post_success, parse_worktree, parse_worktree_setup, remove_after_success,
    )
    from animus.git.worktree import (
        Worktree, WorktreeConflict, Worktrees, phase_uses_worktree, run_uses_worktree,
    )

# a name that is also a submodule's is bound now: once ``animus.git.provision`` is imported,
# the package attribute would be the module, and __getattr__ is never asked
from animus.git.provision import provision  # noqa: E402

_MODULE_OF = {
    "DeliveryBlocked": "errors",
    "DirtyCheckout": "errors",
    "GitError": "repo",
    "GitHubAuthError": "github",
    "GitHubError": "github",
    "GitHubNotFound": "github",
    "GitHubUnavailable": "github",
    "HookFailed": "errors",
    "Identity": "delivery",
    "LockTimeout": "lock",
    "MergeConflict": "errors",
    "MergeResult": "delivery",
    "MergeSpec": "spec",
    "MissingToken": "github",
    "NotARepository": "repo",
    "Provisioned": "provision",
    "PullRequest": "github",
    "PullRequestSpec": "spec",
    "RepoLock": "lock",
    "SpecError": "spec",
    "Strategy": "spec",
    "TargetBranchMissing": "errors",
    "TargetMoved": "errors",
    "Worktree": "worktree",
    "WorktreeConflict": "worktree",
    "WorktreeInProgress": "errors",
    "WorktreeMode": "spec",
    "WorktreeSetup": "spec",
    "WorktreeSpec": "spec",
    "Worktrees": "worktree",
    "commit_all": "delivery",
    "has_changes": "repo",
    "is_git_repo": "repo",
    "mark_setup_done": "provision",
    "merge_branch": "delivery",
    "open_pull_request": "github",
    "parse_merge": "spec",
    "parse_post_success": "spec",
    "parse_worktree": "spec",
    "parse_worktree_setup": "spec",
    "phase_uses_worktree": "worktree",
    "push_and_open_pr": "github",
    "push_branch": "github",
    "remove_after_success": "spec",
    "run_uses_worktree": "worktree",
    "setup_done": "provision",
}

__all__ = [
    "DeliveryBlocked", "DirtyCheckout", "GitError", "GitHubAuthError", "GitHubError", "GitHubNotFound",
    "GitHubUnavailable", "HookFailed", "Identity", "LockTimeout", "MergeConflict", "MergeResult",
    "MergeSpec", "MissingToken", "NotARepository", "Provisioned", "PullRequest", "PullRequestSpec",
    "RepoLock", "SpecError", "Strategy", "TargetBranchMissing", "TargetMoved", "Worktree",
    "WorktreeConflict", "WorktreeInProgress", "WorktreeMode", "WorktreeSetup", "WorktreeSpec",
    "Worktrees", "commit_all", "has_changes", "is_git_repo", "mark_setup_done", "merge_branch",
    "open_pull_request", "parse_merge", "parse_post_success", "parse_worktree", "parse_worktree_setup",
    "phase_uses_worktree", "provision", "push_and_open_pr", "push_branch", "remove_after_success",
    "run_uses_worktree", "setup_done",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'animus.git' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"animus.git.{module}"), name)
    globals()[name] = value
    return value
