"""A run's changes for the transports: what ``GET /api/workflows/{id}/diff`` answers.

The daemon records where a run works (``workflow/get``: ``worktree.path``,
``branch``, ``base``) and what delivery did (``delivery.commit``, ``merge``,
``pr``). From that, git answers in the daemon's project (``daemon/status``
says where): while the worktree exists, its contents against the base
(uncommitted work included); once it is removed, the delivered commit (or
else the branch's tip) against the base. The git work runs in a thread,
read-only, bounded by ``animus.git.diff.DiffLimits``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from animus.errors import Conflict
from animus.git.diff import Changes, DiffLimits, commit_changes, worktree_changes
from animus.git.repo import is_git_repo
from animus.plugins.transports.link import DaemonLink

__all__ = ["workflow_diff"]


def _changes(project: Path, wf: dict[str, Any], limits: DiffLimits) -> Changes:
    worktree, delivery = wf.get("worktree") or {}, wf.get("delivery") or {}
    path = Path(str(worktree.get("path") or ""))
    if worktree.get("path") and not worktree.get("removed") and is_git_repo(path):
        return worktree_changes(path, str(worktree["base"]), limits)
    head = str(delivery.get("commit") or f"refs/heads/{worktree['branch']}")
    return commit_changes(project, str(worktree["base"]), head, limits)


async def workflow_diff(link: DaemonLink, wf_id: str, limits: DiffLimits = DiffLimits()) -> dict[str, Any]:
    wf = await link.call("workflow/get", {"id": wf_id})
    worktree = wf.get("worktree") or {}
    if not worktree.get("branch") or not worktree.get("base"):
        raise Conflict(f"workflow {wf_id} has no branch of its own: it ran in the project root, "
                       "so its changes are mixed with everything else there",
                       fix="give runs worktrees (a first commit in the project, worktree: auto; docs/worktrees.md)")
    project = Path((await link.call("daemon/status"))["project_root"])
    changes = await asyncio.to_thread(_changes, project, wf, limits)
    return {"workflow_id": wf["id"], "status": wf["status"], "branch": worktree["branch"],
            "worktree": worktree, "delivery": wf.get("delivery") or {}, **changes.as_dict()}
