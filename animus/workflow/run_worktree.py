"""Where a run works: its own git worktree, made or found again before its first phase.

``place`` decides, once per runner start, where the run's phases work:

* ``worktree: skip``, a project that is not a git repository (with ``auto``),
  or a repository with no commit yet (with ``auto``; there is nothing to
  branch from): the project root, as before worktrees existed;
* otherwise ``<state root>/worktrees/<workflow id>`` on ``animus/<task>``
  (``animus.git.worktree`` has the naming and reuse rules): made on the first
  start, found again, uncommitted edits and all, on a resume, a retry or after
  a crash. On a fresh worktree the project's ``worktrees:`` block is applied
  (untracked files copied or linked, then the setup command, its output
  streamed as the ``worktree-setup`` phase's output); both are redone until
  they have succeeded once (``setup_done``);
* a runner on a Ray node works in the per-run worktree its node made
  (``remote.ray_task``); ``post_success.merge`` is refused there, before any
  phase runs, because the target branch lives in the daemon's repository.

Anything that stops this (``required`` outside git, a failing setup command,
a git error) is a :class:`Blocked` whose message names the fix.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animus.errors import AnimusError
from animus.git import Worktree, Worktrees, is_git_repo, mark_setup_done, provision, run_uses_worktree, setup_done
from animus.git.probe import probe
from animus.git.repo import rev_parse, top_level
from animus.git.spec import WorktreeMode, WorktreeSpec
from animus.workflow.command_env import command_env
from animus.workflow.command_phase import command_passthrough, run_streamed
from animus.workflow.git_settings import GitSettings, effective_merge, project_worktrees
from animus.workflow.model import WorkflowConfig, WorkflowDefinition
from animus.workflow.outcomes import Blocked
from animus.workflow.run_context import RunContext
from animus.workflow.store import WorkflowRow

__all__ = ["SETUP_PHASE", "TEARDOWN_PHASE", "Placement", "hook_env", "place", "run_hook", "task_label"]

SETUP_PHASE = "worktree-setup"  # the phase name the setup command's output is streamed under
TEARDOWN_PHASE = "worktree-teardown"


@dataclass(frozen=True)
class Placement:
    task_root: Path  # where the run's phases work
    worktrees: Worktrees | None = None
    worktree: Worktree | None = None  # None: the run works in the project root (or a Ray node's checkout)
    record: dict[str, Any] = field(default_factory=dict)  # what the workflow row says of the worktree

    def root_for(self, mode: WorktreeMode | None, project_root: Path) -> Path:
        """A phase's task root: the run's worktree, unless the phase says ``worktree: skip``."""
        return project_root if self.worktree is None or mode is WorktreeMode.SKIP else self.task_root


def task_label(wf: WorkflowRow) -> str | None:
    """The task id as the operator writes it (``TASK-3``, ``linear:ENG-7``); None for an ad-hoc run."""
    subject_id = wf.get("subject_id")
    return str(subject_id).removeprefix("task:") if subject_id else None


def place(ctx: RunContext, wf: WorkflowRow, definition: WorkflowDefinition, config: WorkflowConfig,
          settings: GitSettings, state_root: Path, record: Callable[..., None]) -> Placement:
    """Where this run works (see the module doc); raises Blocked."""
    here = Placement(ctx.project_root)
    if ctx.remote:
        if effective_merge(definition.merge, settings.flags) is not None:
            raise Blocked(f"workflow {definition.id} has post_success.merge, which runners on Ray nodes do not "
                          "carry out (the target branch is in the daemon's repository) (fix: push from a phase: "
                          'git push "$ANIMUS_REPOSITORY" HEAD:"$ANIMUS_BRANCH", and remove post_success.merge, '
                          "or use runners.backend: local)")
        return here
    if (wf.get("worktree") or {}).get("removed"):
        return here  # delivered and cleaned up; only the record of it is left to write
    phases = [WorktreeSpec(mode) for e in definition.phases if (mode := config.phases[e.phase_id].worktree)]
    known = probe(ctx.project_root)  # read from .git where that is sure: no git process per runner start
    try:
        if not run_uses_worktree(definition.worktree, known.inside if known else is_git_repo(ctx.project_root),
                                 phases):
            return here
        top = known.top if known and known.top else top_level(ctx.project_root)
        required = WorktreeMode.REQUIRED in (definition.worktree.mode, *(p.mode for p in phases))
        if not required and ((known and known.unborn) or rev_parse(top, "HEAD") is None):
            ctx.publish("workflow", "worktree_skipped", "warn",
                        message=f"{top} has no commit yet, so there is nothing to branch from: working in the "
                                "project root (make a first commit to give runs worktrees)")
            return here
        return _prepare(ctx, wf, definition, settings, project_worktrees(top, state_root), record)
    except AnimusError as exc:
        raise Blocked(exc.one_line()) from None
    except OSError as exc:  # the disk, permissions: say so instead of crashing the runner again and again
        raise Blocked(f"cannot prepare the run's worktree: {exc} (fix: check {state_root / 'worktrees'}, "
                      f"then animus workflow resume {ctx.wf_id})") from None


def _prepare(ctx: RunContext, wf: WorkflowRow, definition: WorkflowDefinition, settings: GitSettings,
             worktrees: Worktrees, record: Callable[..., None]) -> Placement:
    merge = definition.merge
    wt = worktrees.create(ctx.wf_id, task_id=task_label(wf), base_ref=definition.worktree.base_ref,
                          target_branch=merge.target_branch if merge else "main")
    task_root = wt.path / ctx.project_root.resolve().relative_to(worktrees.project_root.resolve())
    before = wf.get("worktree") or {}
    row = {"path": str(wt.path), "branch": wt.branch, "task_root": str(task_root),
           "base": before.get("base") if before.get("base") and not wt.created else wt.head}
    record(worktree=row)
    if wt.created:
        ctx.publish("workflow", "worktree_created", path=str(wt.path), branch=wt.branch, base=wt.head,
                    message=f"worktree {wt.path} on new branch {wt.branch} from {(wt.head or '')[:10]}")
    else:
        ctx.publish("workflow", "worktree_reused", path=str(wt.path), branch=wt.branch,
                    message=f"continuing in worktree {wt.path} (branch {wt.branch})")
    if not setup_done(wt.path):
        _provision(ctx, worktrees, wt, settings)
        if settings.setup.setup:
            code, why = run_hook(ctx, settings.setup.setup, task_root, settings.setup.setup_timeout_secs, SETUP_PHASE)
            if code != 0:
                shown = _shown(settings.setup.setup)
                raise Blocked(f"the worktree setup command `{shown}` {why} in {task_root} (fix: make it pass "
                              f"there (cd {task_root} && {shown}) or change worktrees.setup in .animus/config.yaml, "
                              f"then animus workflow resume {ctx.wf_id})")
        mark_setup_done(wt.path)
    return Placement(task_root, worktrees, wt, row)


def _provision(ctx: RunContext, worktrees: Worktrees, wt: Worktree, settings: GitSettings) -> None:
    if not (settings.setup.copy or settings.setup.symlink):
        return
    done = provision(worktrees.project_root, wt.path, settings.setup, exclude_root=worktrees.root)
    ctx.publish("workflow", "worktree_provisioned", copied=list(done.copied), linked=list(done.linked),
                message=f"copied {len(done.copied)} and linked {len(done.linked)} untracked path(s) into {wt.path}")
    if done.refused:
        ctx.publish("workflow", "worktree_provisioned", "warn", refused=list(done.refused),
                    message=f"not brought in (outside the project root or in .git): {', '.join(done.refused)}")
    if done.not_ignored:
        ctx.publish("workflow", "worktree_provisioned", "warn", not_ignored=list(done.not_ignored),
                    message=f"brought in but not ignored by git (an agent's git add -A would commit them): "
                            f"{', '.join(done.not_ignored)}; add them to .gitignore")


def _shown(argv: Sequence[str]) -> str:
    return argv[2] if len(argv) == 3 and argv[:2] == ("sh", "-c") else shlex.join(argv)


def hook_env(project_root: Path, animus: dict[str, str]) -> dict[str, str]:
    """A set-up or teardown command's environment: a command phase's (safe base + ``commands.env``)."""
    return command_env(os.environ, {}, command_passthrough(project_root), animus)


def run_hook(ctx: RunContext, argv: Sequence[str], cwd: Path, timeout: float, phase: str) -> tuple[int, str]:
    """Run the worktree's setup or teardown command, streamed as ``phase``'s output: (0, "") or (code, why)."""
    env = hook_env(ctx.project_root, {"ANIMUS_WORKFLOW_ID": ctx.wf_id, "ANIMUS_TASK_ROOT": str(cwd),
                                      "ANIMUS_PROJECT_ROOT": str(ctx.project_root)})
    try:
        code, tail = run_streamed(ctx, argv, cwd, env, timeout, ctx.run_dir / f"{phase}.log", phase)
    except OSError as exc:
        return 127, f"could not start ({exc.strerror or exc})"
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    said = f": {lines[-1][:200]}" if lines else ""
    if code is None:
        return -9, f"timed out after {timeout:g}s{said}"
    return code, "" if code == 0 else f"exited {code}{said}"
