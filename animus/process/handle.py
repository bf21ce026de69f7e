"""The thin process side: spawn a child, watch it, stop it and its descendants.

Every child gets its own process group (so a signal reaches the tools it
runs) and a parent-death signal (so it cannot outlive the supervisor that
owns it, even when that supervisor is SIGKILLed). Exits of exec'd children
are watched with a pidfd, which the event loop polls like any socket;
children forked by the zygote (``zygote.py``) are reaped by it, and it reports
their exit statuses.

One termination function: SIGTERM to the group (plus SIGCONT, so a
stopped child can act on it), wait up to the spec's timeout, then SIGKILL to
the group and to every descendant seen before.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from animus.process.groups import group_alive, kill_groups, kill_sessions, signal_group, stop_group
from animus.process.pdeathsig import PARENT_PID_ENV, preexec_parent_death, set_parent_death_signal
from animus.process.shutdown import BrutalKill, Infinity, Shutdown, Timeout

__all__ = [
    "ChildProcess",
    "spawn",
    "terminate",
    "kill_tree",
    "group_alive",
    "kill_groups",
    "kill_sessions",
    "signal_group",
    "stop_group",
    "set_parent_death_signal",
    "PARENT_PID_ENV",
    "open_pidfd",
]


@dataclass
class ChildProcess:
    """A running child: its pid, create time, stderr tail and how we learn its exit.

    An exec'd child has a ``popen`` (exit seen through a pidfd). A child forked
    by the zygote (``zygote.py``) has none: the zygote reaps it and reports the
    status, which lands in ``status`` and calls ``on_status``.
    """

    popen: subprocess.Popen[bytes] | None
    pid: int
    create_time: float
    started_at: float
    pidfd: int | None = None
    stderr_fd: int | None = None
    status: int | None = None
    on_status: Callable[[], None] | None = None
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    descendants: set[int] = field(default_factory=set)
    _partial: bytes = b""
    gone: bool = False  # a detached child's pidfd said it exited; its status comes from the zygote
    unreported: bool = False  # a detached child's zygote died: nobody will report its status

    def returncode(self) -> int | None:
        if self.popen is not None:
            return self.popen.poll()
        return self.status

    def exited(self, status: int) -> None:
        """The zygote reaped this child (forked children only)."""
        if self.status is None:
            self.status = status
            if self.on_status is not None:
                self.on_status()

    def reporter_lost(self) -> None:
        """A detached child's zygote died: when (or since) it exits, its status is unknown."""
        self.unreported = True
        if self.gone:
            self.exited(-signal.SIGKILL)

    def pidfd_fired(self) -> None:
        """A detached child exited: report it now if no zygote will."""
        self.gone = True
        if self.unreported:
            self.exited(-signal.SIGKILL)

    def last_error(self) -> str:
        return " | ".join(self.stderr_tail)[-500:]

    def feed_stderr(self, data: bytes, sink: Callable[[str], None] | None) -> None:
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > 8192:
            lines.append(self._partial)
            self._partial = b""
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.stderr_tail.append(line)
                if sink:
                    sink(line)


def spawn(
    argv: list[str],
    env: Mapping[str, str],
    cwd: str | Path | None = None,
    capture_stderr: bool = True,
) -> ChildProcess:
    env = dict(env)
    env[PARENT_PID_ENV] = str(os.getpid())
    popen = subprocess.Popen(
        argv,
        env=env,
        cwd=str(cwd) if cwd else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if capture_stderr else None,
        start_new_session=True,
        preexec_fn=preexec_parent_death,
        close_fds=True,
    )
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    pidfd = os.pidfd_open(popen.pid) if hasattr(os, "pidfd_open") else None
    stderr_fd = popen.stderr.fileno() if popen.stderr is not None else None
    return ChildProcess(popen, popen.pid, create_time, time.monotonic(), pidfd, stderr_fd)


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (readable once it exits), or None if it is already reaped."""
    try:
        return os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        return None


def watch(
    loop: asyncio.AbstractEventLoop,
    child: ChildProcess,
    on_exit: Callable[[ChildProcess, int], None],
    on_stderr: Callable[[str], None] | None = None,
) -> None:
    """Call ``on_exit(child, status)`` once when the child exits."""
    fd = child.stderr_fd
    if fd is not None:
        os.set_blocking(fd, False)

        def read_stderr() -> None:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(fd)
                return
            child.feed_stderr(data, on_stderr)

        loop.add_reader(fd, read_stderr)

    def reap() -> None:
        status = child.returncode()
        if status is None:
            return
        _unwatch(loop, child)
        # whatever it started dies with it (its process group, and any
        # descendant seen earlier that left the group)
        signal_group(child.pid, signal.SIGKILL)
        kill_tree(child.descendants)
        on_exit(child, status)

    if child.popen is None:
        child.on_status = reap  # the zygote tells us
        if child.status is not None:
            loop.call_soon(reap)
        elif child.pidfd is not None:  # detached: if its zygote dies first, the pidfd tells us
            pidfd = child.pidfd

            def fired() -> None:
                loop.remove_reader(pidfd)
                child.pidfd_fired()

            loop.add_reader(pidfd, fired)
    elif child.pidfd is not None:
        loop.add_reader(child.pidfd, reap)
    else:  # no pidfd: poll
        def poll() -> None:
            if child.returncode() is None:
                loop.call_later(0.05, poll)
            else:
                reap()

        loop.call_later(0.05, poll)


def _unwatch(loop: asyncio.AbstractEventLoop, child: ChildProcess) -> None:
    if child.pidfd is not None:
        loop.remove_reader(child.pidfd)
        os.close(child.pidfd)
        child.pidfd = None
    fd = child.stderr_fd
    if fd is not None:
        try:
            data = os.read(fd, 65536)
            if data:
                child.feed_stderr(data, None)
        except OSError:
            pass
        loop.remove_reader(fd)
        if child.popen is not None and child.popen.stderr is not None:
            child.popen.stderr.close()
        else:
            os.close(fd)
        child.stderr_fd = None


def descendants(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def kill_tree(pids: set[int], create_times: Mapping[int, float] | None = None) -> None:
    """SIGKILL each pid that is still the process we meant (create time matches)."""
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            if create_times and pid in create_times and abs(proc.create_time() - create_times[pid]) > 0.01:
                continue
            proc.kill()
        except psutil.Error:
            pass


async def terminate(child: ChildProcess, shutdown: Shutdown) -> int:
    """Stop a child and everything it started; return its exit status."""
    child.descendants |= descendants(child.pid)
    if child.returncode() is None:
        if isinstance(shutdown, BrutalKill):
            signal_group(child.pid, signal.SIGKILL)
        else:
            signal_group(child.pid, signal.SIGTERM)
            signal_group(child.pid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
            limit = None if isinstance(shutdown, Infinity) else shutdown.seconds
            if not await _wait_exit(child, limit):
                child.descendants |= descendants(child.pid)
                signal_group(child.pid, signal.SIGKILL)
    await _wait_exit(child, None)
    kill_tree(child.descendants)
    code = child.returncode()
    return code if code is not None else -9


async def _wait_exit(child: ChildProcess, limit: float | None) -> bool:
    deadline = None if limit is None else time.monotonic() + limit
    delay = 0.002
    while child.returncode() is None:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def shutdown_seconds(shutdown: Shutdown) -> float | None:
    if isinstance(shutdown, Timeout):
        return shutdown.seconds
    return 0.0 if isinstance(shutdown, BrutalKill) else None


def describe(child: ChildProcess) -> dict[str, Any]:
    return {"pid": child.pid, "create_time": child.create_time}
