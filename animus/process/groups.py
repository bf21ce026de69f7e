"""Process groups and sessions: signal one, wait for one to end, kill what one left behind.

Apart from ``animus.process.handle`` (which spawns and watches children on an
event loop) because a workflow runner needs these and nothing else of it: a
runner is a fresh process per run, and every module it imports is paid for in
each fork (pages mapped, copied on write, unmapped at exit). psutil is imported
only by the functions that walk the process table, which a runner reaches only
when a command is stopped or swept.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["group_alive", "kill_groups", "kill_sessions", "signal_group", "stop_group"]


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (or ``pid`` alone if it has no group of its own)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_groups(leaders: Mapping[int, float]) -> int:
    """SIGKILL every process in the process groups led by ``leaders`` (pid → create
    time) that was created after its leader: what a dead worker left behind.
    A group id reused by an unrelated, older process is never touched."""
    return _kill_created_after(leaders, os.getpgid)


def kill_sessions(leaders: Mapping[int, float]) -> int:
    """``kill_groups`` for sessions: every process of the sessions led by ``leaders``
    (pid → create time) created after its leader (a dead runner's commands, whatever
    groups they moved to). A session whose leader's pid now names a newer process is
    somebody else's and is left alone."""
    return _kill_created_after({sid: born for sid, born in leaders.items() if not _reused(sid, born)}, os.getsid)


def _reused(pid: int, born: float) -> bool:
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - born) > 0.01
    except psutil.Error:
        return False  # gone: its session's members are the ones to kill


def _kill_created_after(leaders: Mapping[int, float], id_of: Callable[[int], int]) -> int:
    if not leaders:
        return 0
    import psutil

    killed = 0
    for proc in psutil.process_iter(["pid", "create_time"]):
        try:
            pgid = id_of(proc.pid)
        except OSError:
            continue
        born = leaders.get(pgid)
        if born is None or proc.info["create_time"] + 0.01 < born or proc.pid == os.getpid():
            continue
        try:
            proc.kill()
            killed += 1
        except psutil.Error:
            continue
    return killed


def group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` is alive (zombies waiting for a reaper do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    import psutil

    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def stop_group(proc: subprocess.Popen[Any], grace: float) -> int:
    """The synchronous twin of ``terminate``, for a ``Popen`` leading its own group.

    SIGTERM (and SIGCONT) to the group, wait up to ``grace`` seconds for the
    whole group to end, then SIGKILL it; reap the leader and return its status.
    ``grace=0`` kills at once."""
    pgid = proc.pid
    if grace > 0 and group_alive(pgid):
        signal_group(pgid, signal.SIGTERM)
        signal_group(pgid, signal.SIGCONT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            if not group_alive(pgid):
                break
            time.sleep(0.02)
    signal_group(pgid, signal.SIGKILL)
    return proc.wait()
