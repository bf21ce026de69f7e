"""A command phase's leader: gated until its group is on record, and dead with its runner.

The parent-death signal comes from ``setpriv --pdeathsig`` where util-linux
has it (no ``preexec_fn``, so ``subprocess`` can vfork) and from a
``preexec_fn`` elsewhere; both ways are run here, with a real process in the
runner's place that is SIGKILLed while its command runs and nobody sweeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from animus.testing import wait_until
from animus.workflow import command_group

RUNNER = """
import os, sys, time
from pathlib import Path
from animus.workflow import command_group
if sys.argv[2] == "preexec":
    command_group._setpriv = lambda: None
child = command_group.start(Path(sys.argv[1]), ["sleep", "600"], Path.cwd(), {"PATH": os.environ["PATH"]})
print(child.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(params=["setpriv", "preexec"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "setpriv" and command_group._setpriv() is None:
        pytest.skip("no setpriv with --pdeathsig here")
    if request.param == "preexec":
        monkeypatch.setattr(command_group, "_setpriv", lambda: None)
    return str(request.param)


def test_the_command_runs_once_recorded_with_its_output_and_exit_code(tmp_path: Path, way: str) -> None:
    child = command_group.start(tmp_path, ["sh", "-c", 'echo "$0 $$"; exit 3'], tmp_path,
                                {"PATH": os.environ["PATH"]})
    record = json.loads((tmp_path / command_group.RECORD).read_text())
    assert child.stdout is not None
    with child.stdout:
        name, pid = child.stdout.read().decode().split()
    assert command_group.finish(child) == 3
    assert record["pid"] == child.pid == int(pid) and name == "sh"  # the leader is the command itself
    command_group.clear(tmp_path)
    assert not (tmp_path / command_group.RECORD).exists()


def test_the_command_dies_with_its_runner_though_nobody_sweeps(tmp_path: Path, way: str) -> None:
    with subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path), way], cwd=tmp_path,
                          stdout=subprocess.PIPE, text=True) as runner:
        assert runner.stdout is not None
        leader = int(runner.stdout.readline())
        try:
            wait_until(lambda: psutil.Process(leader).name() == "sleep", timeout=10, what="the command to start")
            runner.send_signal(signal.SIGKILL)
            runner.wait()
            wait_until(lambda: gone(leader), timeout=10, what=f"the command {leader} to die with its runner")
        finally:  # a failure must not leave the command behind
            if not gone(leader):
                os.killpg(leader, signal.SIGKILL)
