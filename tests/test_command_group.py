"""A command phase's processes: in a group of their own inside their runner's session, swept with it.

A real process stands in the runner's place: it records its session
(``enter``), starts a command whose background helper moves to a group of
its own (``set -m``), and is SIGKILLed while the command runs. The sweep of
its run directory must kill the command and the helper, and nothing else.
A runner on a Ray node has no one to sweep after it: its command's leader
dies with it by a parent-death signal.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from animus.testing import wait_until
from animus.workflow import command_group

RUNNER = """
import os, sys, time
from pathlib import Path
from animus.workflow import command_group
run_dir = Path(sys.argv[1])
command_group.enter(run_dir)
child = command_group.start(["bash", "-c", "set -m; sleep 600 & echo $!; sleep 600"], Path.cwd(),
                            {"PATH": os.environ["PATH"]})
print(child.pid, child.stdout.readline().decode().strip(), flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_command_runs_in_its_own_group_in_the_runners_session(tmp_path: Path) -> None:
    child = command_group.start(["sh", "-c", 'echo "$0 $$"; exit 3'], tmp_path, {"PATH": os.environ["PATH"]})
    assert child.stdout is not None
    with child.stdout:
        name, pid = child.stdout.read().decode().split()
    assert os.getpgid(child.pid) == child.pid  # its own group: a cancel or its end kills that alone
    assert os.getsid(child.pid) == os.getsid(0)  # our session: a sweep of it reaches the command
    assert command_group.finish(child) == 3
    assert child.pid == int(pid) and name == "sh"  # the leader is the command itself, no gate in front


def test_a_missing_program_fails_before_anything_runs(tmp_path: Path) -> None:
    try:
        command_group.start(["no-such-program-anywhere"], tmp_path, {"PATH": os.environ["PATH"]})
    except FileNotFoundError as exc:
        assert "no-such-program-anywhere" in str(exc)
    else:
        raise AssertionError("started a program that does not exist")


def test_a_killed_runners_session_is_swept_and_nothing_else(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)  # started before, elsewhere
    run_dir = tmp_path / "runs" / "wf-1"
    with subprocess.Popen([sys.executable, "-c", RUNNER, str(run_dir)], cwd=tmp_path, stdout=subprocess.PIPE,
                          text=True, start_new_session=False) as runner:
        assert runner.stdout is not None
        leader, helper = map(int, runner.stdout.readline().split())
        try:
            record = json.loads((run_dir / command_group.RECORD).read_text())
            assert record["sid"] == runner.pid == os.getsid(leader) == os.getsid(helper)
            assert os.getpgid(helper) not in (leader, runner.pid)  # moved out of the command's group
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            assert not gone(leader) and not gone(helper)  # nothing has swept yet
            assert command_group.sweep(run_dir) == 2
            wait_until(lambda: gone(leader) and gone(helper), timeout=10, what="the swept session to die")
            assert not gone(bystander.pid)
            assert not (run_dir / command_group.RECORD).exists()
            assert command_group.sweep(run_dir) == 0  # swept once
        finally:  # a failure must not leave anything behind
            for pid in (leader, helper):
                if not gone(pid):
                    os.kill(pid, signal.SIGKILL)
            bystander.kill()
            bystander.wait()


REMOTE_RUNNER = """
import os, sys, time
from pathlib import Path
from animus.workflow import command_group
child = command_group.start(["sleep", "600"], Path.cwd(), {"PATH": os.environ["PATH"]}, die_with_runner=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_remote_runners_command_dies_with_it_though_nobody_sweeps(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", REMOTE_RUNNER], cwd=tmp_path, stdout=subprocess.PIPE,
                          text=True) as runner:
        assert runner.stdout is not None
        leader = int(runner.stdout.readline())
        try:
            wait_until(lambda: psutil.Process(leader).name() == "sleep", timeout=10, what="the command to start")
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            wait_until(lambda: gone(leader), timeout=10, what=f"the command {leader} to die with its runner")
        finally:
            if not gone(leader):
                os.kill(leader, signal.SIGKILL)


def test_a_record_whose_pid_is_now_another_process_kills_nothing(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        run_dir = tmp_path / "runs" / "wf-2"
        run_dir.mkdir(parents=True)
        # the pid recorded is a live session leader started later than the record says: a reused pid
        (run_dir / command_group.RECORD).write_text(json.dumps({"sid": other.pid, "create_time": 1.0}))
        assert command_group.sweep(run_dir) == 0
        assert not gone(other.pid)
    finally:
        other.kill()
        other.wait()


def test_a_runner_that_cannot_lead_a_session_records_none(tmp_path: Path) -> None:
    """Started as a process group's leader (a job-control shell does that), a runner cannot call setsid:
    it must run on, recording nothing (its session is the shell's, which no sweep may kill)."""
    run_dir = tmp_path / "runs" / "wf-4"
    code = ("import os, sys; from pathlib import Path; from animus.workflow import command_group; "
            "command_group.enter(Path(sys.argv[1])); print(os.getsid(0) == os.getpid())")
    out = subprocess.run([sys.executable, "-c", code, str(run_dir)], process_group=0, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False" and not (run_dir / command_group.RECORD).exists()


def test_a_runner_leaves_only_its_own_record(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "wf-3"
    run_dir.mkdir(parents=True)
    record = run_dir / command_group.RECORD
    record.write_text(json.dumps({"sid": os.getpid() + 1, "create_time": 1.0}))  # a newer runner's
    command_group.leave(run_dir)  # (enter() would make this test process a session leader)
    assert record.exists()
    record.write_text(json.dumps({"sid": os.getpid(), "create_time": 1.0}))
    command_group.leave(run_dir)
    assert not record.exists()


def _sigterm_in_child(runner: Any, own_pid: bool) -> int:
    """Fork; in the child, install the runner's SIGTERM handler, signal itself, report how it ended."""
    pid = os.fork()
    if pid == 0:
        try:
            if own_pid:
                runner.pid = os.getpid()  # the child is the runner here
            signal.signal(signal.SIGTERM, runner.on_sigterm)
            os.kill(os.getpid(), signal.SIGTERM)
            os._exit(10 if runner.draining else 11)
        finally:
            os._exit(12)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_commands_child_before_its_exec_ends_on_sigterm_instead_of_acting_as_the_runner(tmp_path: Path) -> None:
    """A Ray runner's command is forked (for its parent-death signal), and until it execs it runs the
    runner's Python signal handlers. A SIGTERM to the runner's group there (a drain, a cancel) must
    end that child; it used to ask the daemon for the cancel flag over the runner's socket, and was
    found spinning as an orphan twelve minutes after its test."""
    from animus.workflow.runner import Runner
    from animus.workflow.store import WorkflowStore

    store = WorkflowStore(tmp_path / "workflow.db")
    runner = Runner.__new__(Runner)  # the handler's state only: no bus, no daemon
    runner.pid, runner.wf_id, runner.store, runner.draining = os.getpid(), store.create("w", {})["id"], store, False
    assert _sigterm_in_child(runner, own_pid=False) == 128 + signal.SIGTERM  # not the runner: it ends
    assert _sigterm_in_child(runner, own_pid=True) == 10  # the runner itself: a drain, it carries on
