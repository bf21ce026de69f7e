"""A worktree per run, with real git: isolation, branch names, reuse after a crash, removal, pruning."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _gitrepo import commit_file, isolate, make_project, sh, worktrees_for

from animus.errors import InvalidInput
from animus.git import NotARepository, WorktreeConflict, Worktrees, WorktreeSpec, run_uses_worktree
from animus.git.names import run_branch, valid_branch_name
from animus.git.spec import WorktreeMode
from animus.git.worktree import phase_uses_worktree


@pytest.fixture
def wts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Worktrees:
    isolate(monkeypatch, tmp_path)
    return worktrees_for(tmp_path, make_project(tmp_path / "project"))


def test_each_run_has_its_own_worktree_and_branch(wts: Worktrees) -> None:
    root = wts.project_root
    a = wts.create("wf-a", task_id="TASK-1")
    b = wts.create("wf-b", task_id="TASK-2")
    adhoc = wts.create("wf-c")
    assert (a.path, b.path) == (wts.root / "wf-a", wts.root / "wf-b")
    assert (a.branch, b.branch, adhoc.branch) == ("animus/TASK-1", "animus/TASK-2", "animus/wf-c")
    assert a.created and b.created and a.head == sh(root, "rev-parse", "main")
    (a.path / "only-a.txt").write_text("a\n")
    (b.path / "app.py").write_text("changed by b\n")
    assert not (b.path / "only-a.txt").exists() and not (root / "only-a.txt").exists()
    assert (a.path / "app.py").read_text() == (root / "app.py").read_text() == "line 1\nline 2\nline 3\n"
    assert sh(root, "status", "--porcelain") == ""  # the operator's copy saw nothing
    assert sh(a.path, "branch", "--show-current") == "animus/TASK-1"
    assert [w.workflow_id for w in wts.list_managed()] == ["wf-a", "wf-b", "wf-c"]


def test_a_new_workflow_for_the_same_task_gets_a_suffixed_branch(wts: Worktrees) -> None:
    first = wts.create("wf-1", task_id="TASK-7")
    commit_file(first.path, "one.txt", "1\n")
    second = wts.create("wf-2", task_id="TASK-7")
    sh(wts.project_root, "branch", "animus/TASK-7-3")  # the operator's own branch is never taken
    third = wts.create("wf-3", task_id="TASK-7")
    assert (first.branch, second.branch, third.branch) == ("animus/TASK-7", "animus/TASK-7-2", "animus/TASK-7-4")
    assert not (second.path / "one.txt").exists()  # cut from main, not from the earlier run's branch
    assert sh(wts.project_root, "rev-parse", "animus/TASK-7-3") == sh(wts.project_root, "rev-parse", "main")


@pytest.mark.parametrize("task", ["linear:ENG 7", "gh#45/..x", "-weird.lock", "@{", "..", "a" * 300])
def test_task_ids_become_valid_branch_names(wts: Worktrees, task: str) -> None:
    branch = run_branch(task, "wf-x")
    assert valid_branch_name(branch)
    sh(wts.project_root, "check-ref-format", "--branch", branch)
    assert wts.create("wf-x", task_id=task).branch == branch


def test_a_bad_workflow_id_is_refused(wts: Worktrees) -> None:
    with pytest.raises(InvalidInput, match="cannot name a worktree directory"):
        wts.create("../escape")


CRASHING_RUN = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from animus.git import RepoLock, Worktrees
    wts = Worktrees(Path(sys.argv[1]), Path(sys.argv[2]), RepoLock(sys.argv[3]))
    wt = wts.create("wf-crash", task_id="TASK-9")
    (wt.path / "committed.txt").write_text("kept on the branch\\n")
    os.system(f"git -C {wt.path} add committed.txt && git -C {wt.path} commit -q -m work")
    (wt.path / "app.py").write_text("half-done edit\\n")
    (wt.path / "new.txt").write_text("untracked edit\\n")
    with wts.lock:  # killed while holding the repository lock
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_resumed_run_gets_its_worktree_back_with_its_edits(wts: Worktrees) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASHING_RUN, str(wts.project_root), str(wts.root),
                           str(wts.lock.path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    again = wts.create("wf-crash", task_id="TASK-9")
    assert not again.created and again.branch == "animus/TASK-9"
    assert (again.path / "app.py").read_text() == "half-done edit\n"
    assert (again.path / "new.txt").read_text() == "untracked edit\n"
    shutil.rmtree(again.path)  # the checkout is lost; the branch is not
    remade = wts.create("wf-crash", task_id="TASK-9")
    assert remade.created and remade.branch == "animus/TASK-9"
    assert (remade.path / "committed.txt").read_text() == "kept on the branch\n"


def test_a_half_made_worktree_is_made_again(wts: Worktrees) -> None:
    # the state `git worktree add` leaves when killed mid-checkout: an entry locked "initializing"
    path = wts.root / "wf-half"
    wts.root.mkdir(parents=True)
    sh(wts.project_root, "worktree", "add", "-q", "--lock", "--reason", "initializing", "-b", "animus/TASK-3",
       str(path), "main")
    sh(wts.project_root, "config", "branch.animus/TASK-3.animus-workflow", "wf-half")
    (path / "app.py").unlink()
    wt = wts.create("wf-half", task_id="TASK-3")
    assert wt.created and wt.branch == "animus/TASK-3"
    assert (wt.path / "app.py").exists() and sh(wt.path, "status", "--porcelain") == ""


def test_a_worktree_moved_to_another_branch_or_a_stray_directory_is_a_conflict(wts: Worktrees) -> None:
    wt = wts.create("wf-a", task_id="TASK-1")
    sh(wt.path, "switch", "-q", "-c", "elsewhere")
    with pytest.raises(WorktreeConflict, match="not on its run's branch animus/TASK-1") as err:
        wts.create("wf-a", task_id="TASK-1")
    assert err.value.fix == f"git -C {wt.path} switch animus/TASK-1"
    (wts.root / "wf-stray").mkdir()
    (wts.root / "wf-stray" / "notes.txt").write_text("mine\n")
    with pytest.raises(WorktreeConflict, match="exists but is not a worktree"):
        wts.create("wf-stray")
    assert (wts.root / "wf-stray" / "notes.txt").read_text() == "mine\n"


def test_base_ref_and_its_defaults(wts: Worktrees) -> None:
    root = wts.project_root
    first = sh(root, "rev-list", "--max-parents=0", "HEAD")
    assert wts.create("wf-a", base_ref=first).head == first
    with pytest.raises(InvalidInput, match="base_ref 'nope' names no commit"):
        wts.create("wf-b", base_ref="nope")
    sh(root, "switch", "-q", "-c", "feature")
    feature = commit_file(root, "f.txt", "f\n")
    assert wts.create("wf-c", target_branch="main").head == sh(root, "rev-parse", "main")
    assert wts.create("wf-d", target_branch="release").head == feature  # no such target: HEAD


def test_an_empty_repository_cannot_branch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(monkeypatch, tmp_path)
    root = tmp_path / "empty"
    root.mkdir()
    sh(root, "init", "-q")
    with pytest.raises(InvalidInput, match="has no commits yet"):
        worktrees_for(tmp_path, root).create("wf-a")


def test_remove_keeps_the_branch_and_prune_keeps_what_can_resume(wts: Worktrees) -> None:
    root = wts.project_root
    for wf in ("wf-a", "wf-b", "wf-c", "wf-d"):
        (wts.create(wf, task_id=wf.upper()).path / "edit.txt").write_text(wf)
    assert wts.remove("wf-a") and not wts.remove("wf-a")
    assert not (wts.root / "wf-a").exists() and sh(root, "branch", "--list", "animus/WF-A")
    sh(root, "worktree", "add", "-q", "--detach", str(wts.root / ".merge-99999-abcdef"), "main")  # a killed merge's
    (wts.root / "wf-gone").mkdir()  # a directory git no longer knows
    removed = wts.prune(keep={"wf-b", "wf-d"})
    assert removed == ["wf-c", "wf-gone"]
    assert sorted(p.name for p in wts.root.iterdir()) == ["wf-b", "wf-d"]
    assert (wts.root / "wf-b" / "edit.txt").read_text() == "wf-b"
    listed = sh(root, "worktree", "list", "--porcelain")
    assert "wf-c" not in listed and ".merge-" not in listed and "wf-b" in listed
    assert sh(root, "branch", "--list", "animus/*").split() == ["animus/WF-A", "+", "animus/WF-B", "animus/WF-C",
                                                                 "+", "animus/WF-D"]


def test_which_runs_and_phases_use_a_worktree() -> None:
    auto, skip, required = (WorktreeSpec(mode=m) for m in (WorktreeMode.AUTO, WorktreeMode.SKIP,
                                                            WorktreeMode.REQUIRED))
    assert run_uses_worktree(auto, in_git=True) and not run_uses_worktree(auto, in_git=False)
    assert not run_uses_worktree(skip, in_git=True) and run_uses_worktree(required, in_git=True)
    with pytest.raises(NotARepository, match="not a git repository"):
        run_uses_worktree(required, in_git=False)
    with pytest.raises(NotARepository):
        run_uses_worktree(auto, in_git=False, phases=[required])
    with pytest.raises(InvalidInput, match="worktree: skip"):
        run_uses_worktree(skip, in_git=True, phases=[required])
    assert phase_uses_worktree(True, None) and not phase_uses_worktree(True, skip)
    assert not phase_uses_worktree(False, auto)
