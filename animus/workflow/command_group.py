"""A command phase's processes: nothing it started outlives the phase, its runner or its daemon.

A runner is the leader of a session of its own (the zygote forks it so; a
Ray runner is started so), and every command it runs is in that session,
in a process group of its own. So:

- a daemon stop's SIGTERM to the runner's group does not reach the command,
  which runs to its end (the drain);
- when the command's leader has exited, whatever is left in its group is
  killed before the leader is reaped (its pid, the group's id, is still
  reserved then: the signal cannot reach anyone else) — ``finish``;
- the runner's session is on record in ``runs/<id>/runner.json`` (its pid
  and create time) before any command starts, and removed when the runner
  ends; whoever sees the runner die with its record still there kills every
  process of its session — the workflows service when a runner exits, when
  it starts (after its supervisor or the daemon was killed), and when it is
  abandoned by a dying supervisor — ``sweep``. A session cannot be joined,
  only left (``setsid``), so that is exactly what the runner and its commands
  started, wherever they moved between groups. Only processes started after
  the runner are killed, and none when the runner's pid is a newer process's.
  On a Ray node nobody is left to sweep when the runner dies with its Ray
  worker: there a command's leader also gets a parent-death signal.

This replaced a record per command, which had to be written between the
command's fork and its first instruction: a shell gate behind ``setpriv``
(two execs and a ``/proc`` read per phase, ~3 ms) for a guarantee the
session gives for free.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from animus.process.groups import kill_sessions, signal_group
from animus.process.pdeathsig import preexec_parent_death
from animus.process.proc_stat import create_time_of
from animus.state.files import atomic_json

__all__ = ["RECORD", "enter", "finish", "leave", "start", "sweep", "sweep_all"]

RECORD = "runner.json"


def enter(run_dir: Path) -> None:
    """Put this runner's session on record; call before its first command."""
    pid = os.getpid()
    if os.getsid(0) != pid:
        try:
            os.setsid()  # a runner that is not a session leader yet (started by hand)
        except OSError:
            return  # it leads a process group (a job-control shell's): the session is not ours to sweep
    # not fsynced: the record names a live session, so it matters only until the next boot
    atomic_json(run_dir / RECORD, {"sid": pid, "create_time": create_time_of(pid)}, durable=False)


def leave(run_dir: Path) -> None:
    """The runner ends: its commands were each finished, nothing is left to sweep. The record
    is removed only if it is this runner's (a newer run of the workflow may have replaced it)."""
    path = run_dir / RECORD
    try:
        if json.loads(path.read_text()).get("sid") == os.getpid():
            path.unlink(missing_ok=True)
    except (OSError, ValueError, AttributeError):
        pass


def start(argv: Sequence[str], cwd: Path, env: Mapping[str, str],
          die_with_runner: bool = False) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a process group of its own in the runner's session, its output on one pipe.

    ``die_with_runner`` gives the command a parent-death signal, for a runner on a Ray node, where
    nobody is left to sweep once the runner and its Ray worker are gone (it costs a fork of the
    runner instead of a vfork, ~2 ms). ``OSError`` (no such program, no such directory) before
    anything runs."""
    return subprocess.Popen(list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0,
                            preexec_fn=preexec_parent_death if die_with_runner else None)


def finish(child: subprocess.Popen[bytes]) -> int:
    """Wait for the leader to exit, kill what is left in its group, then reap it."""
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        return child.wait()  # already reaped
    signal_group(child.pid, signal.SIGKILL)
    return child.wait()


def sweep(run_dir: Path) -> int:
    """Kill what a dead runner's session left behind; return how many processes."""
    return sweep_all(run_dir.parent, [run_dir])


def sweep_all(runs_dir: Path, dirs: Iterable[Path] | None = None) -> int:
    """``sweep`` every run's record (at a start: no runner of ours is alive yet), in one pass over the processes."""
    sessions: dict[int, float] = {}
    records: list[Path] = []
    try:
        candidates = list(dirs) if dirs is not None else list(runs_dir.iterdir())
    except OSError:
        return 0
    for d in candidates:
        path = d / RECORD
        try:
            data = json.loads(path.read_text())
            sessions[int(data["sid"])] = float(data["create_time"])
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: nothing to go on, but it must not stay
        records.append(path)
    killed = kill_sessions(sessions)
    for path in records:
        path.unlink(missing_ok=True)
    return killed
