"""Every run in its own git worktree, and its work delivered: through the real daemon, with real git.

Command phases stand in for agents (they write files where an agent would);
the project is a real repository with ``main`` checked out in it (the
operator's working copy), GitHub is a loopback server speaking its pulls API
(from ``test_git_github``), ``origin`` a real bare repository. Each test
shares one daemon across the scenarios it tells, one after the other.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from test_git_github import TOKEN, FakeGitHub, _handler

from animus.testing import WaitTimeout, wait_until
from conftest import FAST_RESTART, Env

IDEMPOTENCY_BLOCK = "Idempotency: phase requires explicit retry decision"


# -- helpers -------------------------------------------------------------------------

def git(env: Env, *args: str, cwd: Path | None = None, check: bool = True) -> str:
    out = subprocess.run(["git", "-C", str(cwd or env.project), *args], capture_output=True, text=True,
                         env=env.env, timeout=30, check=False)
    assert not check or out.returncode == 0, f"git {' '.join(args)}: {out.stderr}"
    return out.stdout.strip()


def in_git(env: Env, rev: str, repo: Path | None = None) -> bool:
    """Whether ``rev`` (``branch:path``) names an object in the repository."""
    return subprocess.run(["git", "-C", str(repo or env.project), "cat-file", "-e", rev], env=env.env,
                          capture_output=True, check=False).returncode == 0


def setup_project(env: Env, tmp: Path, workflows: str, **config: Any) -> None:
    """The operator's repository: ``main`` checked out, a first commit with the Animus config in it
    (and ``.env``, untracked and ignored, which a fresh worktree lacks)."""
    gitconfig = tmp / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Operator\n\temail = operator@example.com\n")
    env.env.update({"GIT_CONFIG_GLOBAL": str(gitconfig), "GIT_CONFIG_NOSYSTEM": "1"})
    for var in ("GH_TOKEN", "GITHUB_TOKEN", "GITHUB_API_URL"):
        env.env.pop(var, None)
    git(env, "symbolic-ref", "HEAD", "refs/heads/main")
    (env.project / "app.txt").write_text("original\n")
    (env.project / "README.md").write_text("the operator's project\n")
    (env.project / ".gitignore").write_text(".env\n")
    (env.project / ".env").write_text("SECRET=1\n")
    env.write_config({"restart": FAST_RESTART, "pool_size": 2, "interval_secs": 0.2, **config})
    env.write_workflows(workflows)
    git(env, "add", "-A")
    git(env, "commit", "-q", "-m", "initial commit")
    env.run("plugin", "install", "builtin:default", check=True)  # tasks; command phases need no provider


def new_task(env: Env, title: str, description: str = "") -> str:
    params = {"title": title, "status": "ready", "description": description}
    return str(env.call("subject/call", {"kind": "task", "verb": "create", "params": params})["id"])


def run(env: Env, task: str, workflow: str) -> str:
    return str(env.call("workflow/run", {"task_id": task, "workflow_ref": workflow})["workflow_id"])


def settle(env: Env, wf: str, *statuses: str, timeout: float = 90) -> dict[str, Any]:
    """The run once it reaches one of ``statuses``; a timeout says where it was (deadline generous: 2 busy cores)."""
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        seen.update(env.call("workflow/get", {"id": wf}))
        return dict(seen) if seen["status"] in statuses else None

    try:
        return wait_until(reached, timeout=timeout, interval=0.05, what=f"{wf} to reach {statuses}")
    except WaitTimeout as exc:
        where = {k: seen.get(k) for k in ("status", "current_phase", "blocked_reason", "failure_reason", "waiting")}
        raise WaitTimeout(f"{exc}; last seen {where}") from None


def worktree_of(env: Env, wf: str) -> Path:
    return Path(wait_until(lambda: env.call("workflow/get", {"id": wf})["worktree"].get("path"), timeout=20,
                           interval=0.05, what=f"{wf}'s worktree"))


def events(env: Env, kind: str | None = None, wf: str | None = None) -> list[dict[str, Any]]:
    log = Path(env.call("daemon/status")["state_root"]) / "logs" / "events.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    return [e for e in rows if (kind is None or e["kind"] == kind) and (wf is None or e.get("workflow_id") == wf)]


def wait_event(env: Env, kind: str, wf: str | None = None, count: int = 1) -> list[dict[str, Any]]:
    return wait_until(lambda: len(found := events(env, kind, wf)) >= count and found, timeout=20, interval=0.05,
                      what=f"{count} {kind} event(s)")


def waiting_phase(go: Path, before: str, after: str = "true") -> str:
    """A command phase (in the run's worktree) that does ``before``, waits for ``go`` to exist, does ``after``."""
    script = f'{before}; while [ ! -e "{go}" ]; do sleep 0.05; done; {after}'
    return ("{mode: command, idempotency: idempotent, command: {program: sh, cwd_mode: task_root, args: [-c, "
            + json.dumps(script) + "]}}")


def clean_status(env: Env) -> str:
    return git(env, "status", "--porcelain", "--untracked-files=all")


# -- two runs at once; then two that conflict -------------------------------------------

def test_parallel_runs_are_isolated_and_squash_merged_and_a_conflict_blocks_until_fixed(env: Env, tmp_path: Path) -> None:
    go, clash_go = tmp_path / "go", tmp_path / "clash-go"
    write = waiting_phase(go, 'echo "$ANIMUS_WORKFLOW_ID" > "made-by-$ANIMUS_WORKFLOW_ID.txt"',
                          'ls made-by-* > "seen-by-$ANIMUS_WORKFLOW_ID.txt"')
    clash = waiting_phase(clash_go, 'echo "$ANIMUS_WORKFLOW_ID" > app.txt')
    setup_project(env, tmp_path, f"""
phases:
  write: {write}
  clash: {clash}
workflows:
  - id: parallel
    phases: [write]
    post_success: {{merge: {{strategy: squash, auto_merge: true}}}}
  - id: clashing
    phases: [clash]
    post_success: {{merge: {{strategy: squash, auto_merge: true, target_branch: main}}}}
default_workflow_ref: parallel
""")
    env.start("--skip-preflight")
    before = clean_status(env)
    main_before = git(env, "rev-parse", "main")
    a, b = (run(env, new_task(env, f"task {n}"), "parallel") for n in "ab")
    wt_a, wt_b = worktree_of(env, a), worktree_of(env, b)
    wait_until(lambda: (wt_a / f"made-by-{a}.txt").exists() and (wt_b / f"made-by-{b}.txt").exists(), timeout=20,
               what="both runs to write their file")
    # while they run: each sees only its own file, the operator's copy is as it was
    assert wt_a != wt_b and not (wt_a / f"made-by-{b}.txt").exists() and not (wt_b / f"made-by-{a}.txt").exists()
    assert clean_status(env) == before and not list(env.project.glob("made-by-*"))
    assert git(env, "rev-parse", "main") == main_before
    go.touch()
    done = [settle(env, wf, "completed") for wf in (a, b)]
    # both squash-merged into main (fast-forwarding the operator's clean copy), one commit each
    subjects = git(env, "log", "--format=%s", f"{main_before}..main").splitlines()
    assert sorted(subjects) == ["TASK-001: squash-merge animus/TASK-001 into main",
                                "TASK-002: squash-merge animus/TASK-002 into main"]
    for wf in (a, b):
        assert (env.project / f"made-by-{wf}.txt").read_text() == f"{wf}\n"
        assert (env.project / f"seen-by-{wf}.txt").read_text() == f"made-by-{wf}.txt\n"  # never saw the other's
    assert clean_status(env) == before
    # worktrees removed, branches kept, and workflow get says so
    assert not wt_a.exists() and not wt_b.exists()
    assert git(env, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(env, "branch", "--list", "animus/*", "--format=%(refname:short)").split() == [
        "animus/TASK-001", "animus/TASK-002"]
    for got in done:
        assert got["worktree"]["removed"] is True and got["worktree"]["branch"].startswith("animus/TASK-00")
        assert got["delivery"]["state"] == "done" and got["delivery"]["merge"]["strategy"] == "squash"
        assert got["delivery"]["merge"]["target"] == "main" and len(got["delivery"]["commit"]) == 40
    for kind in ("worktree_created", "changes_committed", "branch_merged", "worktree_removed"):
        assert {e["workflow_id"] for e in events(env, kind)} >= {a, b}, kind
    pretty = env.run("daemon", "stream", "--pretty", "--workflow", a, "--tail", "2000", check=True).stdout
    assert "squash-merged animus/TASK-00" in pretty and "worktree_removed" in pretty and "worktree_created" in pretty
    shown = env.run("workflow", "get", a, check=True).stdout
    assert f"worktree: {wt_a} (removed)" in shown and "merge: squash into main" in shown

    # two runs change the same line: the second merge conflicts and blocks; main is never half-merged
    c, d = (run(env, new_task(env, f"clash {n}"), "clashing") for n in "cd")
    worktree_of(env, c), worktree_of(env, d)
    wait_until(lambda: len(events(env, "worktree_created")) >= 4, timeout=20, what="both clash worktrees")
    clash_go.touch()
    ends = {wf: settle(env, wf, "completed", "blocked") for wf in (c, d)}
    assert sorted(w["status"] for w in ends.values()) == ["blocked", "completed"]
    winner, loser = sorted(ends, key=lambda wf: ends[wf]["status"] != "completed")
    blocked = ends[loser]
    loser_wt = Path(blocked["worktree"]["path"])
    assert "conflicts in app.txt" in blocked["blocked_reason"] and "main is unchanged" in blocked["blocked_reason"]
    assert f"git -C {loser_wt} merge main" in blocked["blocked_reason"]
    assert f"animus workflow resume {loser} --force" in blocked["blocked_reason"]
    assert blocked["delivery"]["state"] == "blocked" and blocked["delivery"]["reason"] == "merge_conflict"
    assert [e["data"]["reason"] for e in events(env, "merge_blocked", loser)] == ["merge_conflict"]
    assert (env.project / "app.txt").read_text() == f"{winner}\n" and clean_status(env) == before
    assert git(env, "show", "main:app.txt") == winner and "<<<<" not in git(env, "show", "main:app.txt")
    assert loser_wt.is_dir() and git(env, "worktree", "list", "--porcelain").count("worktree ") == 2  # no scratch
    # the operator resolves it in the run's worktree as the fix says, then forces the delivery again
    git(env, "merge", "main", cwd=loser_wt, check=False)
    (loser_wt / "app.txt").write_text("resolved\n")
    git(env, "commit", "-q", "-am", "resolve", cwd=loser_wt)
    env.run("workflow", "resume", loser, "--force", check=True)
    resumed = settle(env, loser, "completed")
    assert (env.project / "app.txt").read_text() == "resolved\n" and clean_status(env) == before
    assert [p["attempts"] for p in resumed["phases"]] == [1]  # only the delivery ran again
    assert not loser_wt.exists()


# -- a single run's delivery: refused on a dirty copy or a missing target, and a pull request ----

@contextmanager
def fake_github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gh))
    gh.url = f"http://127.0.0.1:{httpd.server_address[1]}/api/v3"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield gh
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_refused_deliveries_lose_nothing_and_a_pull_request_reaches_the_task(env: Env, tmp_path: Path) -> None:
    feature = ("{mode: command, idempotency: idempotent, command: {program: sh, cwd_mode: task_root, "
               'args: [-c, "echo \\"$ANIMUS_WORKFLOW_ID\\" > feature-$ANIMUS_WORKFLOW_ID.txt"]}}')
    with fake_github() as gh:
        setup_project(env, tmp_path, f"""
phases:
  feature: {feature}
workflows:
  - id: deliver
    phases: [feature]
    post_success: {{merge: {{strategy: squash, auto_merge: true}}}}
  - id: release
    phases: [feature]
    post_success: {{merge: {{strategy: merge, auto_merge: true, target_branch: release}}}}
  - id: pr
    phases: [feature]
    post_success:
      merge: {{create_pr: {{repository: acme/widgets, api_base: "{gh.url}"}}}}
""", worktrees={"copy": [".env"], "setup": "echo set up with $(cat .env)"})
        origin = tmp_path / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True, env=env.env)
        git(env, "remote", "add", "origin", str(origin))
        env.env["GH_TOKEN"] = TOKEN
        env.start("--skip-preflight")
        main_before = git(env, "rev-parse", "main")

        # the operator has uncommitted work on main: refused, blocked, nothing lost
        (env.project / "README.md").write_text("the operator's unsaved edit\n")
        wf = run(env, new_task(env, "dirty copy"), "deliver")
        blocked = settle(env, wf, "blocked")
        reason = blocked["blocked_reason"]
        assert f"main is checked out in {env.project.resolve()} with uncommitted changes (README.md)" in reason
        assert "nothing was merged" in reason and f"stash --include-untracked), then animus workflow resume {wf} --force" in reason
        assert (env.project / "README.md").read_text() == "the operator's unsaved edit\n"
        assert git(env, "rev-parse", "main") == main_before
        branch = blocked["worktree"]["branch"]
        assert git(env, "show", f"{branch}:feature-{wf}.txt") == wf  # the run's work, committed on its branch
        # the worktree got .env and ran the set-up command, its output as phase output; .env is never committed
        setup = [e["data"]["line"] for e in events(env, "phase_output", wf) if e["phase"] == "worktree-setup"]
        assert setup == ["set up with SECRET=1"]
        assert (Path(blocked["worktree"]["path"]) / ".env").read_text() == "SECRET=1\n"
        assert not in_git(env, f"{branch}:.env") and in_git(env, f"{branch}:feature-{wf}.txt")
        assert [e["data"]["reason"] for e in events(env, "merge_blocked", wf)] == ["dirty_checkout"]
        git(env, "stash")
        env.run("workflow", "resume", wf, "--force", check=True)
        settle(env, wf, "completed")
        git(env, "stash", "pop")
        assert (env.project / "README.md").read_text() == "the operator's unsaved edit\n"
        assert (env.project / f"feature-{wf}.txt").read_text() == f"{wf}\n"
        git(env, "checkout", "--", "README.md")

        # a target branch that does not exist: blocked at run time with the command that makes it
        wf = run(env, new_task(env, "release it"), "release")
        blocked = settle(env, wf, "blocked")
        root = env.project.resolve()
        assert f"target branch 'release' does not exist in {root}" in blocked["blocked_reason"]
        assert f"git -C {root} branch release <start-commit>" in blocked["blocked_reason"]
        git(env, "branch", "release", "main")
        env.run("workflow", "resume", wf, "--force", check=True)
        settle(env, wf, "completed")
        assert git(env, "show", f"release:feature-{wf}.txt") == wf

        # create_pr: the branch pushed to origin, the pull request opened, its number on the task
        task = new_task(env, "Add the widget", "The widget must spin.")
        wf = run(env, task, "pr")
        done = settle(env, wf, "completed")
        branch = done["worktree"]["branch"]
        assert branch == "animus/TASK-003"
        assert in_git(env, f"{branch}:feature-{wf}.txt", origin)
        posts = [r for r in gh.requests if r["method"] == "POST"]
        assert len(posts) == 1 and posts[0]["path"] == "/api/v3/repos/acme/widgets/pulls"
        sent = posts[0]["json"]
        assert (sent["head"], sent["base"]) == (branch, "main")
        assert sent["title"] == "TASK-003: Add the widget"
        assert "Task TASK-003: Add the widget" in sent["body"] and "The widget must spin." in sent["body"]
        assert posts[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert done["delivery"]["pr"]["number"] == 42 and "merge" not in done["delivery"]
        custom = env.call("subject/call", {"kind": "task", "verb": "get", "params": {"id": task}})["custom"]
        assert (custom["pr_number"], custom["branch"]) == (42, branch)
        assert custom["pr_url"] == "https://github.com/acme/widgets/pull/42"
        (opened,) = events(env, "pr_opened", wf)
        assert opened["data"]["pr_number"] == 42 and opened["data"]["branch"] == branch
        assert git(env, "rev-parse", "main") != main_before and clean_status(env) == ""


# -- a daemon killed mid-phase ------------------------------------------------------------

def test_sigkilled_daemon_leaves_the_worktree_and_resume_finishes_in_it(env: Env, tmp_path: Path) -> None:
    go = tmp_path / "go"
    slow = waiting_phase(go, "echo attempt >> progress.txt", "echo done >> progress.txt").replace(
        "idempotency: idempotent", "idempotency: sideeffecting")
    setup_project(env, tmp_path, f"""
phases:
  slow: {slow}
workflows:
  - id: slow
    phases: [slow]
    post_success: {{merge: {{strategy: squash, auto_merge: true}}}}
""")
    env.start("--skip-preflight")
    kept, cancelled = run(env, new_task(env, "survive"), "slow"), run(env, new_task(env, "cancel me"), "slow")
    kept_wt, cancelled_wt = worktree_of(env, kept), worktree_of(env, cancelled)
    wait_until(lambda: (kept_wt / "progress.txt").exists() and (cancelled_wt / "progress.txt").exists(),
               timeout=20, what="both phases to start writing")
    env.run("workflow", "cancel", cancelled, check=True)
    settle(env, cancelled, "cancelled")
    assert (cancelled_wt / "progress.txt").exists()  # left for inspection
    root = env.call("daemon/status")["pid"]
    os.kill(root, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{root}").exists() or Path(f"/proc/{root}/stat").read_text().split()[2] == "Z",
               timeout=10, what="the daemon to die")
    assert (kept_wt / "progress.txt").read_text() == "attempt\n"
    assert git(env, "status", "--porcelain", cwd=kept_wt) == "?? progress.txt"  # uncommitted, still there

    env.start("--skip-preflight")  # startup cleanup: on by default
    (cleanup,) = wait_event(env, "worktree_cleanup")
    assert cleanup["data"]["removed"] == [cancelled] and kept not in cleanup["data"]["kept"]
    assert not cancelled_wt.exists() and git(env, "rev-parse", "--verify", "-q", "animus/TASK-002")  # branch kept
    assert (kept_wt / "progress.txt").read_text() == "attempt\n"  # a run that can resume keeps its worktree
    blocked = settle(env, kept, "blocked")
    assert blocked["blocked_reason"] == IDEMPOTENCY_BLOCK
    go.touch()
    env.run("workflow", "resume", kept, "--force", check=True)
    done = settle(env, kept, "completed")
    assert (env.project / "progress.txt").read_text() == "attempt\nattempt\ndone\n"  # finished in the same worktree
    assert done["worktree"]["path"] == str(kept_wt) and not kept_wt.exists()


# -- bad input --------------------------------------------------------------------------

def test_bad_worktree_and_merge_settings_are_one_line_errors(env: Env, tmp_path: Path) -> None:
    phase = "{mode: command, command: {program: 'true'}}"

    def validate(text: str) -> str:
        env.write_workflows(text)
        out = env.run("workflow", "validate")
        assert out.returncode == 2, out.stdout + out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        return out.stderr.strip()

    said = validate(f"phases:\n  p: {phase}\nworkflows:\n  - id: w\n    phases: [p]\n    worktree: sometimes\n")
    assert said.startswith("error: .animus/workflows.yaml:6: workflows.w.worktree: must be one of auto, "
                           "required, skip, got 'sometimes'") and "fix:" in said
    said = validate(f"phases:\n  p: {phase}\nworkflows:\n  - id: w\n    phases: [p]\n    post_success:\n"
                    "      merge: {strategy: octopus}\n")
    assert ".animus/workflows.yaml:7: workflows.w.post_success.merge.strategy: must be one of merge, squash, " \
           "rebase, got 'octopus'" in said
    # the per-project worktrees block is checked when the daemon starts
    env.write_workflows(f"phases:\n  p: {phase}\nworkflows:\n  - id: w\n    phases: [p]\n")
    env.write_config({"worktrees": {"copy": ["../secrets.env"]}})
    out = env.run("daemon", "start", "--skip-preflight")
    assert out.returncode == 2, out.stdout + out.stderr
    (said,) = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert "worktrees.copy[0]: '../secrets.env' reaches outside the project root" in said and "fix:" in said
    # worktree: required outside a git repository: refused when the config is validated
    subprocess.run(["rm", "-rf", str(env.project / ".git")], check=True)
    said = validate(f"phases:\n  p: {phase}\nworkflows:\n  - id: w\n    phases: [p]\n    worktree: required\n")
    root = env.project.resolve()
    assert f".animus/workflows.yaml:6: workflows.w.worktree: required, but {root} is not a git repository" in said
    assert f"(fix: git -C {root} init && " in said


# -- a set-up command that fails, then a teardown ---------------------------------------------

def test_a_failing_setup_blocks_before_any_phase_and_the_teardown_runs_before_removal(env: Env,
                                                                                      tmp_path: Path) -> None:
    broken, torn = tmp_path / "deps-broken", tmp_path / "teardown.log"
    broken.touch()
    phase = ("{mode: command, idempotency: idempotent, command: {program: sh, cwd_mode: task_root, "
             'args: [-c, "echo built > built.txt"]}}')
    setup = f'if [ -e "{broken}" ]; then echo "no deps here" >&2; exit 3; fi; echo deps installed'
    setup_project(env, tmp_path, f"""
phases:
  build: {phase}
workflows:
  - id: deliver
    phases: [build]
    post_success: {{merge: {{strategy: squash, auto_merge: true}}}}
""", worktrees={"setup": ["sh", "-c", setup], "teardown": ["sh", "-c", f'basename "$PWD" >> "{torn}"']})
    env.start("--skip-preflight")

    wf = run(env, new_task(env, "needs deps"), "deliver")
    blocked = settle(env, wf, "blocked")
    path = Path(blocked["worktree"]["path"])
    reason = blocked["blocked_reason"]
    assert reason.startswith(f"the worktree setup command `{setup}` exited 3: no deps here in {path} "), reason
    assert f"(cd {path} && {setup})" in reason and reason.endswith(f"then animus workflow resume {wf})")
    assert not (path / "built.txt").exists()  # no phase ran in a worktree that is not set up
    assert events(env, "phase_started", wf) == []

    broken.unlink()  # the operator's fix; a plain resume (no phase had started, nothing to repeat)
    env.run("workflow", "resume", wf, check=True)
    done = settle(env, wf, "completed")
    assert git(env, "show", "main:built.txt") == "built"
    assert torn.read_text().split() == [wf]  # the teardown ran once, in the run's worktree
    assert done["worktree"].get("removed") is True and not path.exists()
    lines = [e["data"]["line"] for e in events(env, "phase_output", wf) if e["phase"] == "worktree-setup"]
    assert "no deps here" in lines and lines[-1] == "deps installed"


# -- the daemon's delivery flags, and the start-up sweep ---------------------------------------

def test_daemon_flags_override_the_yaml_and_startup_cleanup_sweeps_finished_runs(env: Env, tmp_path: Path) -> None:
    feature = ("{mode: command, idempotency: idempotent, command: {program: sh, cwd_mode: task_root, "
               'args: [-c, "echo \\"$ANIMUS_WORKFLOW_ID\\" > feature-$ANIMUS_WORKFLOW_ID.txt"]}}')
    setup_project(env, tmp_path, f"""
phases:
  feature: {feature}
workflows:
  - id: plain
    phases: [feature]
  - id: merging
    phases: [feature]
    post_success: {{merge: {{strategy: squash, auto_merge: true}}}}
""")
    # --auto-merge gives a workflow without post_success the merge block's defaults;
    # --no-auto-prune-… keeps the worktree after it
    env.start("--skip-preflight", "--auto-merge", "--no-auto-prune-worktrees-after-merge")
    first = run(env, new_task(env, "merged by the flag"), "plain")
    done = settle(env, first, "completed")
    assert git(env, "show", f"main:feature-{first}.txt") == first
    kept = Path(done["worktree"]["path"])
    assert kept.is_dir() and not done["worktree"].get("removed")
    env.run("daemon", "stop", check=True)

    # --no-auto-merge overrides the YAML's auto_merge; --no-startup-cleanup leaves the finished run's worktree
    env.start("--skip-preflight", "--no-auto-merge", "--no-startup-cleanup")
    assert kept.is_dir()
    second = run(env, new_task(env, "not merged"), "merging")
    done = settle(env, second, "completed")
    assert not in_git(env, f"main:feature-{second}.txt")
    assert git(env, "show", f"{done['worktree']['branch']}:feature-{second}.txt") == second
    env.run("daemon", "stop", check=True)

    # a default start sweeps the worktree of the finished run; its branch stays
    assert git(env, "worktree", "list", "--porcelain").count(str(kept)) == 1
    env.start("--skip-preflight")
    wait_until(lambda: not kept.exists(), timeout=20, interval=0.05, what=f"start-up cleanup to remove {kept}")
    assert str(kept) not in git(env, "worktree", "list", "--porcelain")
    assert in_git(env, f"animus/TASK-001:feature-{first}.txt")
    assert clean_status(env) == ""
