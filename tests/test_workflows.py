"""Workflows end to end through the real daemon: runner subprocesses, the bus, workflow.db."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from animus.testing import check_sequence_matches, wait_until
from conftest import ANIMUS, FAST_RESTART, Env

THREE = """
phases:
  one:   {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo one | tee -a {out}"]}}
  two:   {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo two >> {out}"]}}
  three: {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo three | tee -a {out}"]}}
workflows:
  - id: three
    phases: [one, two, three]
default_workflow_ref: three
"""


def boot(env: Env, workflows: str | None = None, autonomous: bool = False, pool: int = 2) -> None:
    env.write_config({"restart": FAST_RESTART, "pool_size": pool, "interval_secs": 0.2})
    if workflows is not None:
        env.write_workflows(workflows)
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    env.install_probe("probe-provider")  # preflight needs a provider; workflows here use commands
    env.start(*(["--autonomous"] if autonomous else []))


def task(env: Env, title: str = "a task", status: str = "ready", priority: str = "p2") -> str:
    return env.json("subject", "create", "--title", title, "--status", status, "--priority", priority)["subject"]["id"]


def run(env: Env, task_id: str, workflow: str | None = None) -> str:
    args = ["workflow", "run", "--task-id", task_id] + (["--workflow", workflow] if workflow else [])
    return env.json(*args)["workflow_id"]  # type: ignore[no-any-return]


def get(env: Env, wf: str) -> dict[str, Any]:
    return env.json("workflow", "get", wf)["workflow"]  # type: ignore[no-any-return]


def wait_status(env: Env, wf: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
    wait_until(lambda: env.call("workflow/get", {"id": wf})["status"] in statuses, timeout=timeout,
               what=f"workflow {wf} to reach {statuses}")
    return get(env, wf)


def events(env: Env) -> list[dict[str, Any]]:
    log = Path(env.status()["state_root"]) / "logs" / "events.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_three_phase_workflow_end_to_end(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    boot(env, THREE.replace("{out}", str(out)))
    tid = task(env, "three phases")
    stream = subprocess.Popen([*ANIMUS, "daemon", "stream", "--json"], cwd=env.project, env=env.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert stream.stderr is not None and "streaming events" in stream.stderr.readline()
        wf = run(env, tid)
        done = wait_status(env, wf, "completed")
    finally:
        stream.send_signal(signal.SIGINT)
        lines = stream.communicate(timeout=10)[0].splitlines()
    assert out.read_text() == "one\ntwo\nthree\n"
    assert [p["phase"] for p in done["phases"]] == ["one", "two", "three"]
    assert all(p["status"] == "completed" and p["attempts"] == 1 for p in done["phases"])
    streamed = [json.loads(x) for x in lines if x.startswith("{")]
    kinds = [e["kind"] for e in streamed if e.get("workflow_id") == wf]
    assert kinds[0] == "workflow_queued" and kinds[-1] == "workflow_completed"
    assert kinds.count("phase_started") == 3 and kinds.count("phase_completed") == 3
    lifecycle = {"workflow_queued", "phase_started", "phase_completed", "workflow_completed"}
    check_sequence_matches([k for k in kinds if k in lifecycle],
                           ["workflow_queued", *["phase_started", "phase_completed"] * 3, "workflow_completed"])
    outputs = [(e["phase"], e["data"]["line"]) for e in streamed if e["kind"] == "phase_output"]
    assert outputs == [("one", "one"), ("three", "three")]  # each phase's output, live (two prints nothing)
    runs = Path(env.status()["state_root"]) / "runs" / wf
    assert (runs / "one.1.log").read_text() == "one\n" and (runs / "three.1.log").read_text() == "three\n"
    assert not (runs / "two.1.log").exists()  # a silent command leaves no empty log
    db = sqlite3.connect(Path(env.status()["state_root"]) / "workflow.db")
    assert db.execute("SELECT status FROM workflows WHERE id=?", (wf,)).fetchone()[0] == "completed"
    assert db.execute("SELECT COUNT(*) FROM checkpoints WHERE workflow_id=?", (wf,)).fetchone()[0] >= 7
    # delivered (nothing to deliver from the project root) and completed in one write
    reasons = [r for (r,) in db.execute("SELECT reason FROM checkpoints WHERE workflow_id=? ORDER BY number", (wf,))]
    assert reasons[-2:] == ["phase_completed", "completed"]
    assert json.loads(db.execute("SELECT delivery_json FROM workflows WHERE id=?", (wf,)).fetchone()[0]) == {
        "state": "done"}
    db.close()
    # the outcome reaches the task once the daemon has seen the runner exit (after workflow_completed)
    wait_until(lambda: env.json("subject", "get", "--id", tid)["subject"]["status"] == "done", timeout=15,
               what="the task marked done")
    assert env.json("daemon", "metrics")["counters"]["workflow_runs_total{status=completed}"] == 1
    session = json.loads((Path(env.status()["state_root"]) / "runs" / wf / "two.session.json").read_text())
    assert session["status"] == "completed"


LOOK = """
phases:
  look:
    mode: command
    idempotency: idempotent
    command: {program: sh, args: [-c, "cat /proc/$PPID/maps > {out}.maps; tr '\\\\0' ' ' < /proc/$(cut -d' ' -f4 /proc/$PPID/stat)/cmdline > {out}.parent"]}
workflows:
  - id: look
    phases: [look]
default_workflow_ref: look
"""


def test_a_runner_is_forked_from_a_zygote_that_imported_only_what_runners_need(env: Env, tmp_path: Path) -> None:
    """A runner is a process per run: every page it maps is paid for at its fork, by copy-on-write
    faults after it and at its exit. Its zygote is exec'd with the runner's modules alone, and those
    never import the daemon's machinery (pyzmq, asyncio, psutil, PyYAML, urllib's HTTP client)."""
    out = tmp_path / "look"
    boot(env, LOOK.replace("{out}", str(out)))
    wf = run(env, task(env, "look at the runner"))
    assert wait_status(env, wf, "completed", "failed")["status"] == "completed"
    parent = Path(f"{out}.parent").read_text().split()
    assert parent[1:4] == ["-m", "animus.supervision.zygote", "animus.workflow.runner"], parent  # no zmq preload
    mapped = {Path(line.split()[-1]).name for line in Path(f"{out}.maps").read_text().splitlines()
              if len(line.split()) >= 6}
    heavy = {name for name in mapped if name.startswith(("libzmq", "_zmq", "_yaml", "_asyncio", "_psutil", "_ssl"))}
    assert heavy == set(), heavy
    assert any(name.startswith("_sqlite3") for name in mapped)  # the maps are the runner's: it has workflow.db open


def test_a_runner_imports_none_of_the_daemons_machinery() -> None:
    """What a runner imports, its zygote maps and every runner's fork pays for: a new import of any of
    these must be made lazy (or moved out of the runner's modules), not slipped in."""
    heavy = ["zmq", "asyncio", "psutil", "yaml", "urllib.request", "ssl", "random", "animus.bus.rpc",
             "animus.process.handle", "animus.workflow.config.merge"]
    code = ("import sys, animus.workflow.runner, animus.workflow.agent_phase; "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [], out


FAILING = """
phases:
  build: {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo building"]}}
  check: {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo broken >&2; exit 3"]}}
workflows:
  - id: failing
    phases: [build, check]
default_workflow_ref: failing
"""


def test_failed_workflow_blocks_its_task(env: Env) -> None:
    boot(env, FAILING)
    tid = task(env)
    wf = run(env, tid)
    failed = wait_status(env, wf, "failed")
    assert "exit code 3" in failed["failure_reason"]
    subject = wait_until(lambda: (s := env.json("subject", "get", "--id", tid)["subject"])["status"] == "blocked" and s,
                         timeout=10, what="the task to be blocked")
    assert subject["blocked_reason"] == "Blocked by status update"
    check = [p for p in failed["phases"] if p["phase"] == "check"][0]
    assert "broken" in check["attempt_list"][-1]["output_tail"]
    # the runbook's fix path: move the task back to ready
    env.run("subject", "status", "--kind", "task", "--id", tid, "--status", "ready", check=True)
    assert env.json("subject", "get", "--id", tid)["subject"]["blocked_reason"] is None


REWORK = """
phases:
  implement: {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo x >> {count}"]}}
  review:
    mode: command
    idempotency: idempotent
    command: {program: sh, args: [-c, "test $(wc -l < {count}) -ge 3"]}
workflows:
  - id: loop
    phases:
      - implement
      - review: {max_rework_attempts: 3, on_verdict: {rework: {target: implement}}}
default_workflow_ref: loop
"""


def test_rework_loop_routes_back_until_review_passes(env: Env, tmp_path: Path) -> None:
    count = tmp_path / "count"
    boot(env, REWORK.replace("{count}", str(count)))
    wf = run(env, task(env))
    done = wait_status(env, wf, "completed")
    phases = {p["phase"]: p for p in done["phases"]}
    assert phases["implement"]["attempts"] == 3 and phases["review"]["attempts"] == 3
    assert count.read_text().count("x") == 3


MANUAL = """
phases:
  prepare: {mode: command, idempotency: idempotent, command: {program: "true"}}
  gate: {mode: manual, manual: {instructions: "look at it"}}
  ship: {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "echo shipped"]}}
workflows:
  - id: gated
    phases: [prepare, gate, ship]
default_workflow_ref: gated
"""


def test_manual_phase_waits_for_approval(env: Env) -> None:
    boot(env, MANUAL)
    wf = run(env, task(env))
    waiting = wait_until(lambda: (w := get(env, wf))["waiting"] and w, timeout=10, what="the approval gate")
    assert waiting["status"] == "pending" and "approval of phase gate" in waiting["waiting"]
    env.run("workflow", "approve", wf, "--phase", "gate", check=True)
    wait_status(env, wf, "completed")
    wf2 = run(env, task(env, "second"))
    wait_until(lambda: get(env, wf2)["waiting"], timeout=10, what="the second gate")
    env.run("workflow", "reject", wf2, "--phase", "gate", "--note", "not good", check=True)
    assert "rejected" in wait_status(env, wf2, "failed")["failure_reason"]


SLOW = """
phases:
  work:
    mode: command
    idempotency: {idem}
    command: {program: sh, args: [-c, "echo started >> {marks}; sleep 30; echo finished >> {marks}"]}
  after: {mode: command, idempotency: idempotent, command: {program: "true"}}
workflows:
  - id: slow
    phases: [work, after]
default_workflow_ref: slow
"""


def runner_pid(env: Env, wf: str) -> int:
    for sup in env.status()["tree"]:
        for child in sup["children"]:
            if child["name"] == wf and child.get("pid"):
                return int(child["pid"])
    raise LookupError(wf)


@pytest.mark.parametrize("idem", ["sideeffecting", "unknown"])
def test_killed_runner_blocks_non_idempotent_phase_until_forced(env: Env, tmp_path: Path, idem: str) -> None:
    marks = tmp_path / "marks"
    boot(env, SLOW.replace("{marks}", str(marks)).replace("{idem}", idem))
    wf = run(env, task(env))
    wait_until(lambda: marks.exists(), timeout=10, what="the phase to start")
    os.kill(wait_until(lambda: runner_pid(env, wf), timeout=5, what="runner pid"), signal.SIGKILL)
    blocked = wait_status(env, wf, "blocked")
    assert blocked["blocked_reason"] == "Idempotency: phase requires explicit retry decision"
    listed = env.json("workflow", "list", "--status", "blocked")["workflows"]
    assert [w["id"] for w in listed] == [wf]
    refused = env.run("workflow", "resume", wf)
    assert refused.returncode == 4 and "--force" in refused.stderr
    env.run("workflow", "cancel", wf, check=True)
    assert get(env, wf)["status"] == "cancelled"
    assert marks.read_text().count("started") == 1  # never re-run on its own


def test_killed_runner_retries_idempotent_phase(env: Env, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    boot(env, SLOW.replace("{marks}", str(marks)).replace("{idem}", "idempotent")
         .replace("sleep 30", "test -f {flag} || sleep 30".replace("{flag}", str(tmp_path / "flag"))))
    wf = run(env, task(env))
    wait_until(lambda: marks.exists(), timeout=10, what="the phase to start")
    runner = runner_pid(env, wf)
    # the flag only for the retry: this attempt must already be past its test, sleeping
    wait_until(lambda: any(p.name() == "sleep" for p in psutil.Process(runner).children(recursive=True)),
               timeout=10, what="the first attempt asleep")
    (tmp_path / "flag").write_text("go fast now")
    os.kill(runner, signal.SIGKILL)
    done = wait_status(env, wf, "completed")
    work = [p for p in done["phases"] if p["phase"] == "work"][0]
    assert [a["status"] for a in work["attempt_list"]] == ["crashed", "completed"]


def test_force_resume_reruns_blocked_phase(env: Env, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    flag = tmp_path / "flag"
    boot(env, SLOW.replace("{marks}", str(marks)).replace("{idem}", "sideeffecting")
         .replace("sleep 30", f"test -f {flag} || sleep 30"))
    wf = run(env, task(env))
    wait_until(lambda: marks.exists(), timeout=10, what="the phase to start")
    os.kill(runner_pid(env, wf), signal.SIGKILL)
    wait_status(env, wf, "blocked")
    flag.write_text("1")
    env.run("workflow", "resume", wf, "--force", check=True)
    wait_status(env, wf, "completed")
    assert marks.read_text().count("started") == 2  # the operator decided to run it again


def test_cancel_stops_the_runner_and_its_command(env: Env, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    boot(env, SLOW.replace("{marks}", str(marks)).replace("{idem}", "idempotent"))
    tid = task(env)
    wf = run(env, tid)
    wait_until(lambda: marks.exists(), timeout=10, what="the phase to start")
    pid = runner_pid(env, wf)
    # a runner records its own session (runs/<id>/runner.json); the daemon's pid record leaves runs out
    state = Path(env.status()["state_root"])
    assert json.loads((state / "runs" / wf / "runner.json").read_text())["sid"] == pid
    recorded = json.loads((state / "daemon" / "pids.json").read_text())["pids"]
    assert str(pid) not in recorded and len(recorded) >= 5  # the supervisors, zygotes and plugins
    out = env.json("workflow", "cancel", wf)
    assert out["workflow"]["status"] == "cancelled"
    wait_until(lambda: not _alive(pid), timeout=5, what="the runner to exit")
    assert "finished" not in marks.read_text()
    wait_until(lambda: env.json("subject", "get", "--id", tid)["subject"]["status"] == "cancelled", timeout=10,
               what="the task to be cancelled")


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


AGENT = """
agents:
  coder: {tool: nosuchprovider, model: x}
phases:
  implement: {mode: agent, agent: coder, idempotency: sideeffecting}
workflows:
  - id: agentic
    phases: [implement]
default_workflow_ref: agentic
"""


def test_phase_with_missing_provider_blocks_with_install_command(env: Env) -> None:
    boot(env, AGENT)
    wf = run(env, task(env))
    blocked = wait_status(env, wf, "blocked")
    assert "provider plugin nosuchprovider is not installed" in blocked["blocked_reason"]
    assert "animus plugin install" in blocked["blocked_reason"]


def test_concurrency_limit_queues_runs(env: Env, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    boot(env, SLOW.replace("{marks}", str(marks)).replace("{idem}", "idempotent")
         .replace("sleep 30", "sleep 0.3"), pool=1)
    ids = [run(env, task(env, f"t{i}")) for i in range(3)]
    for wf in ids:
        wait_status(env, wf, "completed")
    spans = {}
    for e in events(env):
        if e["kind"] in ("workflow_started", "workflow_completed"):
            spans.setdefault(e["workflow_id"], []).append(e["ts"])
    ordered = sorted(spans.values())
    for (_, end), (start, _) in zip(ordered, ordered[1:]):
        assert start >= end  # one at a time


def test_autonomous_mode_takes_ready_tasks_by_priority(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    boot(env, THREE.replace("{out}", str(out)), pool=1)
    low = task(env, "low", "ready", "p3")
    high = task(env, "high", "ready", "p0")
    parked = task(env, "not ready", "backlog", "p0")
    env.run("daemon", "stop", check=True)
    env.start("--autonomous")
    wait_until(lambda: all(env.json("subject", "get", "--id", t)["subject"]["status"] == "done" for t in (low, high)),
               timeout=30, what="both tasks done")
    started = [e["data"]["subject_id"] for e in events(env) if e["kind"] == "workflow_queued"]
    assert started == [high, low]
    assert env.json("subject", "get", "--id", parked)["subject"]["status"] == "backlog"


def test_bad_workflow_yaml_stops_the_daemon_start(env: Env) -> None:
    env.write_workflows("phases:\n  a: {mode: command, command: {program: x, timeout_secs: ten}}\n"
                        "workflows:\n  - id: w\n    phases: [a]\n")
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    out = env.run("daemon", "start", "--skip-preflight")
    assert out.returncode == 2
    assert "workflows.yaml:2" in out.stderr and "timeout_secs" in out.stderr
    validate = env.run("workflow", "validate")
    assert validate.returncode == 2 and "timeout_secs" in validate.stderr
    assert not any((env.home).glob("*/state/workflow-config.v1.json"))


def test_deleting_state_is_safe(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    boot(env, THREE.replace("{out}", str(out)))
    state_root = Path(env.status()["state_root"])
    env.run("daemon", "stop", check=True)
    (state_root / "state").rename(state_root / "state.broken")
    env.start()
    wf = run(env, task(env))
    wait_status(env, wf, "completed")
    assert (state_root / "state" / "workflow-config.v1.json").exists()

