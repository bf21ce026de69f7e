"""Start-up cleanup: remove the worktrees of runs that are over, never one a run can still use.

``daemon start`` (unless ``--no-startup-cleanup``) sweeps ``<state
root>/worktrees`` once, before the first queued run starts:

* a run that can still go on (pending, running, blocked, failed: each can be
  resumed) keeps its worktree, whatever it holds;
* a cancelled run's worktree is removed: ``workflow cancel`` left it for
  inspection until now (what was committed stays on its branch);
* a completed run's, or one whose run is gone from ``workflow.db``, is removed
  unless it holds uncommitted work (a run without delivery leaves its work
  there), which is kept and reported with the command that removes it, or
  unless its workflow turns cleanup off (``worktree.cleanup: false``,
  ``cleanup_worktree: false``, ``--no-auto-prune-worktrees-after-merge``);
* scratch worktrees of merges a crash interrupted are removed.

The project's teardown command runs in each worktree before it is removed; if
it fails the worktree is kept. Which runs may keep their worktree is asked
of ``workflow.db`` while the repository lock is held (``Worktrees.prune``
checks ``in keep`` under it), so a run started during the sweep keeps its
worktree. The sweep runs in a thread, with a connection of its own.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animus.errors import AnimusError, NotFound
from animus.git import Worktrees, is_git_repo, remove_after_success
from animus.git.repo import top_level
from animus.workflow.config import read_compiled
from animus.workflow.deliver import leftovers
from animus.workflow.git_settings import DeliveryFlags, effective_merge, project_worktrees
from animus.workflow.model import WorkflowConfig
from animus.workflow.run_worktree import hook_env
from animus.workflow.settings import WorkflowSettings
from animus.workflow.store import WorkflowStore

__all__ = ["RESUMABLE", "CleanupReport", "sweep"]

RESUMABLE = ("pending", "running", "blocked", "failed")


@dataclass
class CleanupReport:
    removed: dict[str, str] = field(default_factory=dict)  # workflow id -> the worktree's path
    kept: dict[str, str] = field(default_factory=dict)  # workflow id -> why (for those a run does not need)


class _Keep:
    """``wf_id in keep``: asked live of workflow.db, under the repository lock."""

    def __init__(self, store: WorkflowStore, worktrees: Worktrees, kept: dict[str, str],
                 config: WorkflowConfig | None, flags: DeliveryFlags) -> None:
        self.store, self.worktrees, self.kept = store, worktrees, kept
        self.config, self.flags = config, flags

    def _cleanup_off(self, workflow_ref: str) -> bool:
        definition = self.config.workflows.get(workflow_ref) if self.config else None
        return definition is not None and not remove_after_success(
            definition.worktree, effective_merge(definition.merge, self.flags))

    def __contains__(self, wf_id: object) -> bool:
        if not isinstance(wf_id, str):
            return False
        if wf_id in self.kept:
            return True
        try:
            wf: dict[str, Any] = dict(self.store.get(wf_id))
        except NotFound:
            wf = {"status": None, "workflow_ref": ""}
        status = wf["status"]
        if status in RESUMABLE:
            return True
        if status == "cancelled":
            return False
        if status == "completed" and self._cleanup_off(wf["workflow_ref"]):
            return True  # as its workflow asks: not reported at every start
        try:
            left = leftovers(self.worktrees.path_for(wf_id))
        except (AnimusError, OSError):
            return False  # not a worktree at all: nothing of a run's is in it
        if left:
            self.kept[wf_id] = (f"{'run gone' if status is None else 'completed'}, but it holds uncommitted work "
                                f"({', '.join(left[:3])}); commit it, or remove it: "
                                f"git worktree remove --force {self.worktrees.path_for(wf_id)}")
        return bool(left)


def sweep(settings: WorkflowSettings) -> CleanupReport:
    """Remove what the module doc says; report what was removed and what was kept, and why."""
    report = CleanupReport()
    root = settings.project_root
    if not is_git_repo(root) or not (settings.state_root / "worktrees").is_dir():
        return report
    worktrees = project_worktrees(top_level(root), settings.state_root)
    store = WorkflowStore(settings.state_root / "workflow.db")
    try:
        config = read_compiled(settings.state_root / "state")
    except AnimusError:
        config = None  # then only the runs' statuses and uncommitted work decide
    try:
        keep = _Keep(store, worktrees, report.kept, config, settings.git.flags)
        paths = {wt.workflow_id: wt.path for wt in worktrees.list_managed()}
        teardown = settings.git.setup.teardown
        for wf_id, path in paths.items():
            if teardown and wf_id not in keep:
                env = hook_env(root, {"ANIMUS_WORKFLOW_ID": wf_id, "ANIMUS_TASK_ROOT": str(path),
                                      "ANIMUS_PROJECT_ROOT": str(root)})
                why = _teardown(list(teardown), path, env, settings.git.setup.teardown_timeout_secs,
                                settings.state_root / "runs" / wf_id / "worktree-teardown.log")
                if why:
                    report.kept[wf_id] = f"the teardown command {why}; run it there, then git worktree remove {path}"
        for wf_id in worktrees.prune(keep):
            report.removed[wf_id] = str(paths.get(wf_id, worktrees.path_for(wf_id)))
    finally:
        store.close()
    return report


def _teardown(argv: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> str | None:
    """Run the teardown command, its output to ``log``; None when it succeeded, else why not."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "ab") as out:
            code = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout, check=False,
                                  start_new_session=True).returncode
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:g}s (output in {log})"
    except OSError as exc:
        return f"could not start ({exc.strerror or exc})"
    return None if code == 0 else f"exited {code} (output in {log})"
