"""A command phase's process group: nothing it started outlives the phase, its runner or its daemon.

A command runs in a session of its own, so that a daemon stop's SIGTERM to
the runner's group lets the phase finish (the drain). That also puts it out
of reach of the tree's rule that a dead worker's process group dies with it:
a runner SIGKILLed mid-command used to leave the command's background
processes running for good (found by ``bench/soak.py``). So:

- when the command's leader has exited, whatever is left in its group is
  killed before the leader is reaped (its pid, the group's id, is still
  reserved then: the signal cannot reach anyone else) — ``finish``;
- while it runs, the group is recorded in ``runs/<id>/command.json``
  (leader pid and create time) — recorded before the command runs anything:
  it is started behind a gate (``start``: ``/bin/sh`` waits on a pipe, then
  execs the command in the same process), opened once the record is written;
  a runner killed in between closes the pipe and the gate exits (a runner
  killed after the command had started its helpers, before the record, used
  to leave them unknown to everyone: found by ``bench/soak.py``);
  whoever sees the runner die kills what is
  left of it — the workflows service when a runner exits, when it starts
  (after its supervisor or the daemon was killed), and when it is abandoned
  by a dying supervisor — ``sweep``. Only processes of that group created
  after its leader are killed (``kill_groups``): never a reused group id's.

The leader's parent-death signal is set by util-linux's ``setpriv
--pdeathsig`` in front of the gate where it has that option (2.33+), else by
a ``preexec_fn``; a ``preexec_fn`` makes ``subprocess`` fork the whole runner
instead of a vfork, ~2 ms of every phase.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from animus.process.handle import kill_groups, signal_group
from animus.process.pdeathsig import preexec_parent_death
from animus.state.files import atomic_json

__all__ = ["RECORD", "start", "finish", "record", "clear", "sweep", "sweep_all"]

RECORD = "command.json"
# the gate is the command's stdin until it opens: a line opens it, end of file (the runner
# died) closes it for good; the command itself gets /dev/null
_GATE = 'read -r _ || exit 125; exec "$@" </dev/null'


def start(run_dir: Path, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, its output on one pipe; it runs once its group is
    recorded. ``OSError`` (no such program, no such directory) before anything runs."""
    _check_program(argv[0], cwd, env)
    setpriv = _setpriv()
    prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
    gate, opener = os.pipe()
    try:
        child = subprocess.Popen([*prefix, "/bin/sh", "-c", _GATE, "animus-command", *argv], cwd=cwd,
                                 env=dict(env), stdin=gate, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True, preexec_fn=None if setpriv else preexec_parent_death)
    except BaseException:
        os.close(opener)
        raise
    finally:
        os.close(gate)
    try:
        record(run_dir, child)
        os.write(opener, b"\n")
    except BaseException:
        os.close(opener)  # the gate exits without running anything
        child.wait()
        raise
    os.close(opener)
    return child


@functools.cache
def _setpriv() -> str | None:
    """``setpriv`` if it can set a parent-death signal (its binary names the option; no exec to ask)."""
    path = shutil.which("setpriv")
    try:
        return path if path and b"pdeathsig" in Path(path).read_bytes() else None
    except OSError:
        return None


def _check_program(program: str, cwd: Path, env: Mapping[str, str]) -> None:
    """What ``Popen`` of the command itself would raise: the gate would only exit 127."""
    if not cwd.is_dir():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(cwd))
    if os.sep in program:
        path = Path(program) if os.path.isabs(program) else cwd / program
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
        if not os.access(path, os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), program)
    elif shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def record(run_dir: Path, child: subprocess.Popen[bytes]) -> None:
    try:
        created = psutil.Process(child.pid).create_time()  # not reaped yet: a zombie still has one
    except psutil.Error:
        return
    # not fsynced: the record names live processes, so it matters only until the next boot
    atomic_json(run_dir / RECORD, {"pid": child.pid, "create_time": created}, durable=False)


def clear(run_dir: Path) -> None:
    (run_dir / RECORD).unlink(missing_ok=True)


def finish(child: subprocess.Popen[bytes]) -> int:
    """Wait for the leader to exit, kill what is left in its group, then reap it."""
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        return child.wait()  # already reaped
    signal_group(child.pid, signal.SIGKILL)
    return child.wait()


def sweep(run_dir: Path) -> int:
    """Kill what a dead runner's command left behind; return how many processes."""
    path = run_dir / RECORD
    try:
        data = json.loads(path.read_text())
        leader = {int(data["pid"]): float(data["create_time"])}
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    killed = kill_groups(leader)
    path.unlink(missing_ok=True)
    return killed


def sweep_all(runs_dir: Path) -> int:
    """``sweep`` every run's record (at a start: no runner of ours is alive yet)."""
    try:
        dirs = [d for d in runs_dir.iterdir() if (d / RECORD).exists()]
    except OSError:
        return 0
    return sum(sweep(d) for d in dirs)
