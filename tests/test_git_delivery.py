"""Delivery with real git: commit what a run left, each merge strategy, and every refusal.

A refusal must leave the target branch, the operator's copy and the
repository exactly as they were: the ref unchanged, ``git status`` clean (or
still holding the operator's own edits), no scratch worktree left behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _gitrepo import commit_file, fsck_clean, isolate, make_project, sh, worktrees_for

from animus.errors import ExitCode
from animus.git import (
    DirtyCheckout,
    HookFailed,
    MergeConflict,
    Strategy,
    TargetBranchMissing,
    TargetMoved,
    WorktreeInProgress,
    Worktrees,
    commit_all,
    merge_branch,
)
from animus.git.provision import provision
from animus.git.spec import WorktreeSetup


@pytest.fixture
def wts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Worktrees:
    isolate(monkeypatch, tmp_path)
    return worktrees_for(tmp_path, make_project(tmp_path / "project"))


def hook(root: Path, name: str, script: str) -> None:
    path = root / ".git" / "hooks" / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)


def worktree_list(root: Path) -> list[str]:
    return [ln for ln in sh(root, "worktree", "list", "--porcelain").splitlines() if ln.startswith("worktree ")]


def test_commit_all_names_the_task_and_the_workflow(wts: Worktrees) -> None:
    wt = wts.create("wf-1", task_id="TASK-1")
    assert commit_all(wt.path, workflow_id="wf-1", task_id="TASK-1") is None  # nothing left: no empty commit
    (wt.path / "app.py").write_text("edited\n")
    (wt.path / "new" / "file.txt").parent.mkdir()
    (wt.path / "new" / "file.txt").write_text("new\n")
    (wt.path / "README.md").unlink()
    sha = commit_all(wt.path, workflow_id="wf-1", task_id="TASK-1")
    assert sha == sh(wt.path, "rev-parse", "HEAD") and sh(wt.path, "status", "--porcelain") == ""
    assert sh(wt.path, "log", "-1", "--format=%an <%ae>|%cn") == "Animus <animus@localhost>|Animus"
    message = sh(wt.path, "log", "-1", "--format=%B")
    assert message.startswith("TASK-1: changes left by workflow wf-1")
    assert "Animus-Task: TASK-1" in message and "Animus-Workflow: wf-1" in message
    changes = set(sh(wt.path, "show", "--name-status", "--format=", "HEAD").splitlines())
    assert changes == {"M\tapp.py", "D\tREADME.md", "A\tnew/file.txt"}


def test_a_worktree_left_mid_merge_is_not_committed_with_its_conflict_markers(wts: Worktrees) -> None:
    root = wts.project_root
    wt = wts.create("wf-1", task_id="TASK-1")
    commit_file(wt.path, "app.py", "mine\n")
    commit_file(root, "app.py", "theirs\n")
    sh(wt.path, "merge", "-q", "main", check=False)  # the agent's own merge, left in conflict
    head = sh(wt.path, "rev-parse", "HEAD")
    with pytest.raises(WorktreeInProgress) as err:
        commit_all(wt.path, workflow_id="wf-1", task_id="TASK-1")
    assert err.value.one_line() == (f"{wt.path} has unresolved conflicts in app.py; nothing was committed (fix: "
                                    f"finish or abort it (git -C {wt.path} status), then animus workflow resume "
                                    "wf-1 --force)")
    assert sh(wt.path, "rev-parse", "HEAD") == head and "<<<<<<<" in (wt.path / "app.py").read_text()


def test_what_provisioning_brought_in_is_never_committed(wts: Worktrees) -> None:
    root = wts.project_root
    (root / ".env").write_text("SECRET=1\n")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "index.js").write_text("x\n")
    (root / "local.cfg").write_text("not ignored\n")
    (root / "outside").symlink_to(root.parent)
    wt = wts.create("wf-1", task_id="TASK-1")
    got = provision(root, wt.path, WorktreeSetup(copy=(".env", "*.cfg", "outside", "app.py"),
                                                 symlink=("node_modules",)), exclude_root=wts.root)
    assert got.copied == (".env", "local.cfg") and got.linked == ("node_modules",)
    assert got.existing == ("app.py",) and got.refused == ("outside",)
    assert set(got.not_ignored) == {"local.cfg", "node_modules"}  # a symlink does not match "node_modules/"
    assert (wt.path / ".env").read_text() == "SECRET=1\n" and (wt.path / "node_modules" / "dep").is_dir()
    (wt.path / "work.txt").write_text("the run's work\n")
    commit_all(wt.path, workflow_id="wf-1", task_id="TASK-1")
    assert sh(wt.path, "show", "--name-only", "--format=", "HEAD").split() == ["work.txt"]
    again = provision(root, wt.path, WorktreeSetup(copy=(".env",)))  # a resumed run: idempotent
    assert again.copied == () and again.existing == (".env",)


def make_run(wts: Worktrees, wf: str, files: dict[str, str]) -> Path:
    wt = wts.create(wf, task_id=wf.upper())
    for name, text in files.items():
        (wt.path / name).write_text(text)
    commit_all(wt.path, workflow_id=wf, task_id=wf.upper())
    return wt.path


@pytest.mark.parametrize("strategy", list(Strategy))
def test_each_strategy_delivers_into_main_and_the_operators_copy(wts: Worktrees, strategy: Strategy) -> None:
    root = wts.project_root
    path = make_run(wts, "wf-1", {"feature.txt": "feature\n"})
    commit_file(path, "more.txt", "second commit\n")
    main_moved = commit_file(root, "meanwhile.txt", "on main meanwhile\n")
    result = merge_branch(wts, "animus/WF-1", target="main", strategy=strategy, workflow_id="wf-1", task_id="WF-1")
    tip = sh(root, "rev-parse", "main")
    assert (result.previous, result.merged, result.checkout) == (main_moved, tip, root)
    assert sh(root, "rev-list", "--reverse", f"{main_moved}..main").split() == list(result.commits)
    assert (root / "feature.txt").read_text() == "feature\n" and (root / "more.txt").exists()
    assert sh(root, "status", "--porcelain") == ""  # the operator's copy moved with the branch
    parents = sh(root, "log", "-1", "--format=%P", "main").split()
    if strategy is Strategy.MERGE:
        assert parents == [main_moved, sh(root, "rev-parse", "animus/WF-1")] and len(result.commits) == 3
        assert sh(root, "log", "-1", "--format=%s", "main") == "Merge animus/WF-1 into main (WF-1)"
    elif strategy is Strategy.SQUASH:
        assert parents == [main_moved] and len(result.commits) == 1
        body = sh(root, "log", "-1", "--format=%B", "main")
        assert body.startswith("WF-1: squash-merge animus/WF-1 into main") and "- write more.txt" in body
    else:
        assert len(result.commits) == 2 and sh(root, "rev-list", "--merges", f"{main_moved}..main") == ""
        assert sh(root, "log", "--format=%s", "-2", "main").splitlines()[0] == "write more.txt"
    assert worktree_list(root) == [f"worktree {root}", f"worktree {path}"]  # no scratch left
    again = merge_branch(wts, "animus/WF-1", target="main", strategy=strategy)
    assert again.already_merged and sh(root, "rev-parse", "main") == tip  # a retried delivery changes nothing
    fsck_clean(root)


def test_a_target_not_checked_out_moves_by_compare_and_swap(wts: Worktrees) -> None:
    root = wts.project_root
    make_run(wts, "wf-1", {"feature.txt": "feature\n"})
    sh(root, "switch", "-q", "-c", "operator-work")
    result = merge_branch(wts, "animus/WF-1", strategy=Strategy.SQUASH)
    assert result.checkout is None and sh(root, "rev-parse", "main") == result.merged
    assert not (root / "feature.txt").exists() and sh(root, "branch", "--show-current") == "operator-work"
    assert sh(root, "reflog", "-1", "--format=%gs", "main") == "animus: squash animus/WF-1"


def test_a_conflict_is_refused_whole_and_resumes_after_the_fix(wts: Worktrees) -> None:
    root = wts.project_root
    first = make_run(wts, "wf-1", {"app.py": "line 1\nfirst run\nline 3\n"})
    second = make_run(wts, "wf-2", {"app.py": "line 1\nsecond run\nline 3\n", "other.txt": "x\n"})
    merge_branch(wts, "animus/WF-1", strategy=Strategy.SQUASH, workflow_id="wf-1")
    before = sh(root, "rev-parse", "main")
    with pytest.raises(MergeConflict) as err:
        merge_branch(wts, "animus/WF-2", strategy=Strategy.SQUASH, workflow_id="wf-2")
    assert err.value.one_line() == (
        f"merging animus/WF-2 into main conflicts in app.py; main is unchanged (fix: git -C {second} merge main, "
        "resolve, commit, then animus workflow resume wf-2 --force)")
    assert err.value.exit_code == ExitCode.CONFLICT and err.value.reason == "merge_conflict"
    assert sh(root, "rev-parse", "main") == before and sh(root, "status", "--porcelain") == ""
    assert (root / "app.py").read_text() == "line 1\nfirst run\nline 3\n" and not (root / "other.txt").exists()
    assert worktree_list(root) == [f"worktree {root}", f"worktree {first}", f"worktree {second}"]
    # the operator follows the fix, then the resumed run delivers
    sh(second, "merge", "-q", "main", check=False)
    (second / "app.py").write_text("line 1\nboth runs\nline 3\n")
    sh(second, "commit", "-q", "-am", "resolve")
    result = merge_branch(wts, "animus/WF-2", strategy=Strategy.SQUASH, workflow_id="wf-2")
    assert (root / "app.py").read_text() == "line 1\nboth runs\nline 3\n" and result.commits
    fsck_clean(root)


def test_rebase_conflict_names_the_rebase_fix(wts: Worktrees) -> None:
    root = wts.project_root
    path = make_run(wts, "wf-1", {"app.py": "mine\n"})
    commit_file(root, "app.py", "theirs\n")
    with pytest.raises(MergeConflict, match="conflicts in app.py") as err:
        merge_branch(wts, "animus/WF-1", strategy=Strategy.REBASE, workflow_id="wf-1")
    assert err.value.fix == f"git -C {path} rebase main, resolve, git rebase --continue, then animus workflow " \
                            "resume wf-1 --force"
    assert (root / "app.py").read_text() == "theirs\n" and len(worktree_list(root)) == 2


def test_a_dirty_operator_copy_is_refused_and_nothing_is_lost(wts: Worktrees) -> None:
    root = wts.project_root
    make_run(wts, "wf-1", {"feature.txt": "from the run\n"})
    before = sh(root, "rev-parse", "main")
    (root / "app.py").write_text("the operator's unsaved work\n")
    with pytest.raises(DirtyCheckout) as err:
        merge_branch(wts, "animus/WF-1", workflow_id="wf-1")
    assert err.value.one_line() == (
        f"main is checked out in {root} with uncommitted changes (app.py); nothing was merged "
        f"(fix: commit or stash them (git -C {root} stash --include-untracked), then animus workflow resume wf-1 "
        "--force)")
    assert sh(root, "rev-parse", "main") == before and not (root / "feature.txt").exists()
    assert (root / "app.py").read_text() == "the operator's unsaved work\n"
    sh(root, "checkout", "--", "app.py")
    (root / "feature.txt").write_text("the operator's own untracked file\n")
    with pytest.raises(DirtyCheckout, match=r"untracked files the merge would overwrite \(feature.txt\)"):
        merge_branch(wts, "animus/WF-1")
    assert (root / "feature.txt").read_text() == "the operator's own untracked file\n"
    assert sh(root, "rev-parse", "main") == before and len(worktree_list(root)) == 2


def test_failed_hooks_block_the_commit_and_the_merge(wts: Worktrees) -> None:
    root = wts.project_root
    wt = wts.create("wf-1", task_id="TASK-1")
    (wt.path / "feature.txt").write_text("x\n")
    hook(root, "pre-commit", "echo 'lint: feature.txt is not formatted' >&2; exit 1")
    with pytest.raises(HookFailed) as err:
        commit_all(wt.path, workflow_id="wf-1", task_id="TASK-1")
    assert err.value.hook == "pre-commit" and err.value.reason == "hook_failed"
    assert err.value.message == (f"the pre-commit hook refused the commit of what workflow wf-1 left in {wt.path}: "
                                 "lint: feature.txt is not formatted")
    assert err.value.fix == f"make the hook pass: git -C {wt.path} commit, then animus workflow resume wf-1 --force"
    (root / ".git" / "hooks" / "pre-commit").unlink()
    commit_all(wt.path, workflow_id="wf-1", task_id="TASK-1")
    before = sh(root, "rev-parse", "main")
    hook(root, "pre-commit", "echo 'tests failed' >&2; exit 1")
    with pytest.raises(HookFailed, match="the pre-commit hook refused the squash commit .*: tests failed"):
        merge_branch(wts, "animus/TASK-1", strategy=Strategy.SQUASH, workflow_id="wf-1")
    hook(root, "pre-merge-commit", "echo 'merges need review' >&2; exit 1")
    with pytest.raises(HookFailed, match="the pre-merge-commit hook refused the merge commit"):
        merge_branch(wts, "animus/TASK-1", strategy=Strategy.MERGE, workflow_id="wf-1")
    assert sh(root, "rev-parse", "main") == before and sh(root, "status", "--porcelain") == ""
    assert len(worktree_list(root)) == 2


def test_a_missing_target_branch_is_refused(wts: Worktrees) -> None:
    make_run(wts, "wf-1", {"feature.txt": "x\n"})
    with pytest.raises(TargetBranchMissing) as err:
        merge_branch(wts, "animus/WF-1", target="release", workflow_id="wf-1")
    assert err.value.one_line() == (
        f"target branch 'release' does not exist in {wts.project_root}; nothing was merged (fix: git -C "
        f"{wts.project_root} branch release <start-commit>, or set post_success.merge.target_branch to an existing "
        "branch, then animus workflow resume wf-1 --force)")
    assert sh(wts.project_root, "branch", "--list", "release") == ""


def test_a_target_moved_by_someone_else_is_never_overwritten(wts: Worktrees) -> None:
    # a hook commits to main from outside Animus while the merge is being prepared
    root = wts.project_root
    make_run(wts, "wf-1", {"feature.txt": "x\n"})
    sh(root, "switch", "-q", "-c", "operator-work")
    hook(root, "pre-merge-commit",
         f'git -C "{root}" update-ref refs/heads/main $(git -C "{root}" commit-tree -p main -m outside main^{{tree}})')
    with pytest.raises(TargetMoved, match="main moved while the merge was prepared"):
        merge_branch(wts, "animus/WF-1", workflow_id="wf-1")
    assert sh(root, "log", "-1", "--format=%s", "main") == "outside"
