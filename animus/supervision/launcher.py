"""How a child supervisor starts a worker: forked from a zygote, or exec'd.

First-party Python workers (``python -m animus.…``) are forked from a
preloaded zygote (a few ms instead of an interpreter start); everything else
is exec'd. ``ANIMUS_ZYGOTE=0`` turns the zygote off; after three fork
failures the exec path takes over for good.
"""

from __future__ import annotations

import asyncio
import os
import time

import psutil

from animus.process import handle as process
from animus.supervision.spec import ChildSpec
from animus.supervision.zygote import Zygote, eligible

__all__ = ["Launcher", "launch", "preload_modules"]


def launch(spec: ChildSpec) -> process.ChildProcess:
    start = spec.start
    return process.spawn(start["argv"], start.get("env") or {}, start.get("cwd"))


def preload_modules(argvs: list[list[str]], extra: tuple[str, ...] = ()) -> list[str]:
    """What a zygote should import: every first-party module among ``argvs``, and ``extra``."""
    modules = [m for m in (eligible(argv) for argv in argvs) if m]
    return [name for m in modules for name in (m, m + ".__main__")] + list(extra)


class Launcher:
    def __init__(self, preload: list[str]) -> None:
        self.enabled = os.environ.get("ANIMUS_ZYGOTE", "1") not in ("0", "false", "no", "off")
        self.forked: dict[int, process.ChildProcess] = {}
        self.zygote = Zygote(preload, self._exited)
        self.failures = 0

    def _exited(self, pid: int, status: int) -> None:
        child = self.forked.pop(pid, None)
        if child is not None:
            child.exited(status)

    def __call__(self, spec: ChildSpec) -> process.ChildProcess:
        start = spec.start
        argv = list(start["argv"])
        module = eligible(argv) if self.enabled and self.failures < 3 else None
        if module is None:
            return launch(spec)
        try:
            self.zygote.attach(asyncio.get_running_loop())
            pid, stderr_fd = self.zygote.fork(module, argv[3:], dict(start.get("env") or {}), start.get("cwd"))
            self.zygote.attach(asyncio.get_running_loop())
        except RuntimeError:
            self.failures += 1  # the exec path always works
            return launch(spec)
        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.Error:
            create_time = 0.0
        child = process.ChildProcess(None, pid, create_time, time.monotonic(), None, stderr_fd)
        self.forked[pid] = child
        return child

    def close(self) -> None:
        self.zygote.stop()
