"""The repository lock across real processes: parallel runs deliver without corrupting .git."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _gitrepo import fsck_clean, isolate, make_project, sh, worktrees_for

from animus.git import LockTimeout, RepoLock, Worktrees
from animus.testing import wait_until

RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from animus.git import RepoLock, Strategy, Worktrees, commit_all, merge_branch
    root, wt_root, lock, wf = sys.argv[1:5]
    wts = Worktrees(Path(root), Path(wt_root), RepoLock(lock))
    print("ready", flush=True)
    sys.stdin.readline()  # start together, so the runs really contend
    wt = wts.create(wf, task_id="TASK-" + wf)
    for i in range(20):
        (wt.path / f"{wf}-{i}.txt").write_text(f"{wf} {i}\\n")
    commit_all(wt.path, workflow_id=wf, task_id="TASK-" + wf)
    result = merge_branch(wts, wt.branch, target="main", strategy=Strategy.SQUASH, workflow_id=wf)
    wts.remove(wf)
    print(result.merged)
""")

HOLD = textwrap.dedent("""
    import sys
    from animus.git import RepoLock
    with RepoLock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.readline()
""")


@pytest.fixture
def wts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Worktrees:
    isolate(monkeypatch, tmp_path)
    return worktrees_for(tmp_path, make_project(tmp_path / "project"))


def test_parallel_runs_create_merge_and_remove_without_corrupting_git(wts: Worktrees) -> None:
    root = wts.project_root
    runs = [f"wf-{n}" for n in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", RUN, str(root), str(wts.root), str(wts.lock.path), wf],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for wf in runs]
    assert all(p.stdout is not None and p.stdout.readline() == "ready\n" for p in procs)
    for p in procs:  # all at once: communicate() waits for each process to end
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(runs), [err for _, err in results]
    fsck_clean(root)
    assert sh(root, "rev-list", "--count", "HEAD~4..main") == "4"  # one squash commit per run, none lost
    for wf in runs:
        assert all((root / f"{wf}-{i}.txt").read_text() == f"{wf} {i}\n" for i in range(20))
        assert sh(root, "branch", "--list", f"animus/TASK-{wf}")  # branches kept
    assert sh(root, "status", "--porcelain") == ""
    assert sh(root, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not wts.root.exists() or list(wts.root.iterdir()) == []


def test_a_held_lock_times_out_naming_its_holder_and_is_freed_by_its_death(wts: Worktrees) -> None:
    with subprocess.Popen([sys.executable, "-c", HOLD, str(wts.lock.path)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            lock = RepoLock(wts.lock.path, timeout=0.2)
            with pytest.raises(LockTimeout) as err:
                lock.acquire()
            assert err.value.message == f"git lock {wts.lock.path} is held by pid {holder.pid} for more than 0.2s"
            assert not lock.held
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=10)
            wait_until(lambda: _try(lock), timeout=5, what="the lock to be free after its holder died")
            lock.release()
        finally:
            holder.kill()


def _try(lock: RepoLock) -> bool:
    try:
        lock.acquire(timeout=0)
    except LockTimeout:
        return False
    return True


def test_the_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    lock = RepoLock(tmp_path / "run" / "git.lock")
    with lock:
        with lock:  # a function called with the lock held takes it again
            assert lock.held
        assert lock.held
    assert not lock.held
    with pytest.raises(RuntimeError, match="released without being held"):
        lock.release()
