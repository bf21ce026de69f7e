"""Worktree overhead: what a run's own worktree and its delivery cost, per run.

On a generated repository of realistic size (``--files``, default 5 000 files
in 250 directories, one commit), each run does, measured step by step:

* **worktree**: ``Worktrees.create`` (``git worktree add`` on a new branch,
  a full checkout) → a simulated phase writing files in the worktree →
  ``commit_all`` → ``merge_branch(strategy=squash)`` into ``main``, which is
  checked out and clean in the project root (so the root is fast-forwarded)
  → ``Worktrees.remove``;
* **skip**: the same simulated phase writing in the project root (what
  ``worktree: skip`` does); the root is restored afterwards, outside the
  timing.

The two kinds alternate so machine load hits both alike. Prints the median
of each step, both totals, the ratio and the added milliseconds per run.

Then the same comparison end to end, through a real daemon on a repository of
the same size (``--daemon-runs``, 0 to skip): a workflow with one command phase
writing ten new files in its task root, run with ``worktree: auto`` and a
``post_success.merge`` squash merge (worktree made, phase, commit, merge,
worktree removed) against the same workflow with ``worktree: skip``; each
time is from ``workflow/run`` to the run seen ``completed``.

Run: ``.venv/bin/python bench/worktree_overhead.py [--files N] [--runs N] [--daemon-runs N]``. Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from animus.git import RepoLock, Strategy, Worktrees, commit_all, merge_branch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _daemon import running_daemon  # noqa: E402 - bench/ is not a package

PHASE_EDITS = 10  # files a phase changes: half edited, half new


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout


def generate(root: Path, files: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    sh(root, "init", "-q", "-b", "main")
    per_dir = 20
    for n in range(files):
        folder = root / "src" / f"pkg{n // per_dir:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{n % per_dir:02d}.py").write_text(f'"""module {n}"""\n\n' + f"VALUE_{n} = {n}\n" * 30)
    sh(root, "add", "-A")
    sh(root, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "generated")


def phase(cwd: Path, run: int) -> None:
    """A phase's writes: edit some tracked files, add some new ones."""
    for i in range(PHASE_EDITS // 2):
        path = cwd / "src" / f"pkg{(run * 7 + i) % 250:03d}" / f"mod{i:02d}.py"
        path.write_text(path.read_text() + f"# run {run}\n")
        (cwd / "src" / f"new_{run}_{i}.py").write_text(f"NEW = {run}\n")


def worktree_run(wts: Worktrees, run: int) -> dict[str, float]:
    wf = f"wf-{run:04d}"
    times: dict[str, float] = {}
    t = time.perf_counter()
    wt = wts.create(wf, task_id=f"TASK-{run}")
    times["create"] = time.perf_counter() - t
    t = time.perf_counter()
    phase(wt.path, run)
    times["phase"] = time.perf_counter() - t
    t = time.perf_counter()
    commit_all(wt.path, workflow_id=wf, task_id=f"TASK-{run}")
    times["commit"] = time.perf_counter() - t
    t = time.perf_counter()
    merge_branch(wts, wt.branch, target="main", strategy=Strategy.SQUASH, workflow_id=wf)
    times["squash merge"] = time.perf_counter() - t
    t = time.perf_counter()
    wts.remove(wf)
    times["remove"] = time.perf_counter() - t
    return times


def skip_run(root: Path, run: int) -> float:
    t = time.perf_counter()
    phase(root, run)
    took = time.perf_counter() - t
    sh(root, "checkout", "-q", "--", ".")  # back to a clean copy, outside the timing
    sh(root, "clean", "-q", "-fd", "--", "src")
    return took


DAEMON_YAML = """
phases:
  edit:
    mode: command
    idempotency: idempotent
    command:
      program: sh
      cwd_mode: task_root
      args: [-c, 'mkdir -p out/$ANIMUS_WORKFLOW_ID && for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > out/$ANIMUS_WORKFLOW_ID/f$i.txt; done']
workflows:
  - id: auto
    phases: [edit]
    post_success: {merge: {strategy: squash, auto_merge: true}}
  - id: skip
    phases: [edit]
    worktree: skip
"""


def daemon_runs(files: int, runs: int) -> tuple[float, float, int]:
    """Median ms of a daemon run with worktree auto + squash merge, and with skip; runs merged."""
    from animus.bus.rpc import ControlClient

    def prepare(project: Path, env: dict[str, str]) -> None:
        shutil.rmtree(project / ".git")
        (project / ".animus").mkdir()
        (project / ".animus" / "workflows.yaml").write_text(DAEMON_YAML)
        generate(project, files)

    def timed(client: ControlClient, ref: str) -> float:
        t = time.perf_counter()
        wf = client.call("workflow/run", {"title": f"bench {ref}", "workflow_ref": ref})["workflow_id"]
        while (status := client.call("workflow/get", {"id": wf})["status"]) not in ("completed", "failed", "blocked"):
            time.sleep(0.005)
        if status != "completed":
            raise SystemExit(f"bench run {wf} ({ref}) ended {status}")
        return (time.perf_counter() - t) * 1000

    with running_daemon(prepare=prepare) as d:
        client = ControlClient(d.endpoint("control"), timeout=60)
        try:
            timed(client, "auto"), timed(client, "skip")  # warm up both
            auto, skip = [], []
            for _ in range(runs):
                auto.append(timed(client, "auto"))
                skip.append(timed(client, "skip"))
            merged = int(sh(d.project, "rev-list", "--count", "main")) - 2
        finally:
            client.close()
    return statistics.median(auto), statistics.median(skip), merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--daemon-runs", type=int, default=8)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="animus-bench-wt-"))
    env = {"GIT_CONFIG_GLOBAL": str(base / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1"}
    (base / "gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@localhost\n")
    os.environ.update(env)
    try:
        root = base / "project"
        t = time.perf_counter()
        generate(root, args.files)
        print(f"repository: {args.files} files, generated in {time.perf_counter() - t:.1f} s; "
              f"{args.runs} runs of each kind, interleaved; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        wts = Worktrees(root, base / "scope" / "worktrees", RepoLock(base / "scope" / "run" / "git.lock"))
        worktree_run(wts, 0)  # warm the page cache for both kinds
        skip_run(root, 0)
        steps: list[dict[str, float]] = []
        skips: list[float] = []
        for run in range(1, args.runs + 1):
            steps.append(worktree_run(wts, run))
            skips.append(skip_run(root, run))
        merged = int(sh(root, "rev-list", "--count", "main")) - 2  # minus the generated and warm-up commits
    finally:
        shutil.rmtree(base, ignore_errors=True)
    totals = [sum(s.values()) for s in steps]
    for name in steps[0]:
        print(f"  {name:<13} median {statistics.median(s[name] for s in steps) * 1000:8.1f} ms")
    wt_ms, skip_ms = statistics.median(totals) * 1000, statistics.median(skips) * 1000
    print(f"worktree run (create + phase + commit + squash merge + remove): median {wt_ms:8.1f} ms")
    print(f"skip run (the same phase in the project root):                  median {skip_ms:8.1f} ms")
    print(f"ratio worktree/skip: {wt_ms / skip_ms:.0f}x; {merged} of {args.runs} runs squash-merged into main")
    print(f"result: a run in its own worktree, delivered by squash merge, costs {wt_ms - skip_ms:.0f} ms more "
          f"than writing in the project root, on a {args.files}-file repository")
    if not args.daemon_runs:
        return 0 if merged == args.runs else 1
    auto_ms, plain_ms, delivered = daemon_runs(args.files, args.daemon_runs)
    print(f"through the daemon, {args.daemon_runs} runs of each, interleaved (workflow/run to completed):")
    print(f"  worktree: auto + squash merge: median {auto_ms:8.1f} ms")
    print(f"  worktree: skip:                median {plain_ms:8.1f} ms")
    print(f"ratio auto/skip: {auto_ms / plain_ms:.1f}x, {auto_ms - plain_ms:.0f} ms more per run; "
          f"{delivered} of {args.daemon_runs} runs squash-merged into main")
    return 0 if merged == args.runs and delivered == args.daemon_runs else 1


if __name__ == "__main__":
    sys.exit(main())
