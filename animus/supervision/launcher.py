"""How a supervisor starts a child: forked from a zygote, or exec'd.

First-party Python children (``python -m animus.…``) are forked from a
preloaded zygote (a few ms instead of an interpreter start); everything else
is exec'd. ``ANIMUS_ZYGOTE=0`` turns the zygote off; after three fork
failures the exec path takes over for good.

A launcher made with ``fork_self`` forks its zygote from this very process
at once, so it must be made before any thread or ZeroMQ context exists (a
supervisor's first step). One made ``lean`` execs its zygote at once, which
imports its ``preload`` and nothing else (not even ``BASE_PRELOAD``): for
workers forked once per job, such as workflow runners, where fork, the
copy-on-write faults after it and the exit all cost by the pages mapped (a
runner's 22 MB against a supervisor's 30). One made with ``detach`` (the root's) forks
children that outlive its zygote: each is watched by pidfd, and if the
zygote dies first, the exit is reported with an unknown status (as killed).
"""

from __future__ import annotations

import asyncio
import os
import time

from animus.process import handle as process
from animus.process.proc_stat import create_time_of
from animus.supervision.spec import ChildSpec
from animus.supervision.zygote import eligible
from animus.supervision.zygote_handle import Zygote

__all__ = ["Launcher", "launch", "preload_modules"]


def launch(spec: ChildSpec) -> process.ChildProcess:
    start = spec.start
    return process.spawn(start["argv"], start.get("env") or {}, start.get("cwd"))


def preload_modules(argvs: list[list[str]], extra: tuple[str, ...] = ()) -> list[str]:
    """What a zygote should import: every first-party module among ``argvs``, and ``extra``."""
    modules = [m for m in (eligible(argv) for argv in argvs) if m]
    return [name for m in modules for name in (m, m + ".__main__")] + list(extra)


class Launcher:
    def __init__(self, preload: list[str], fork_self: bool = False, detach: bool = False,
                 lean: bool = False) -> None:
        self.enabled = os.environ.get("ANIMUS_ZYGOTE", "1") not in ("0", "false", "no", "off")
        self.detach = detach
        self.forked: dict[int, process.ChildProcess] = {}
        self.zygote = Zygote(preload, self._exited, self._lost, lean=lean)
        self.failures = 0
        if self.enabled and (fork_self or lean):
            self.zygote.start(fork_self=fork_self and not lean)

    def _exited(self, pid: int, status: int) -> None:
        child = self.forked.pop(pid, None)
        if child is not None:
            child.exited(status)

    def _lost(self, pid: int) -> None:
        child = self.forked.pop(pid, None)
        if child is not None:
            child.reporter_lost()

    def __call__(self, spec: ChildSpec) -> process.ChildProcess:
        start = spec.start
        argv = list(start["argv"])
        module = eligible(argv) if self.enabled and self.failures < 3 else None
        if module is None:
            return launch(spec)
        env = dict(start.get("env") or {})
        if self.detach:
            env[process.PARENT_PID_ENV] = str(os.getpid())  # its owner is us, not the zygote
        try:
            self.zygote.attach(asyncio.get_running_loop())
            pid, stderr_fd = self.zygote.fork(module, argv[3:], env, start.get("cwd"), self.detach)
            self.zygote.attach(asyncio.get_running_loop())
        except RuntimeError:
            self.failures += 1  # the exec path always works
            return launch(spec)
        try:
            create_time = create_time_of(pid)  # psutil's value, without psutil's ~0.1 ms per process
        except (OSError, ValueError, IndexError):
            create_time = 0.0
        pidfd = process.open_pidfd(pid) if self.detach else None
        child = process.ChildProcess(None, pid, create_time, time.monotonic(), pidfd, stderr_fd)
        self.forked[pid] = child
        return child

    def close(self) -> None:
        self.zygote.stop()
