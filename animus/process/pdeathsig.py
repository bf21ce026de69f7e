"""Parent-death signal: the kernel kills us when our parent dies (Linux).

Kept free of heavy imports: every Animus process calls it first thing.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
from collections.abc import Callable

__all__ = ["Owner", "PARENT_PID_ENV", "die_with_parent", "set_parent_death_signal", "preexec_parent_death"]

PARENT_PID_ENV = "ANIMUS_PARENT_PID"

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` when our parent (thread) exits."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)


def preexec_parent_death() -> None:
    """For ``preexec_fn``: runs between fork and exec, async-signal-safe work only."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that ties the child to this process (Linux only).

    Unlike ``preexec_parent_death`` it also catches the race where we died
    between fork and the prctl: the child then finds itself orphaned and exits.
    """
    if _libc is None:
        return None
    parent = os.getpid()
    libc = _libc

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return hook


class Owner:
    """The process that owns this one (``ANIMUS_PARENT_PID``), and whether it is gone.

    Usually the owner is our parent, and the kernel sends ``sig`` when it dies.
    A child a zygote forked *detached* on its owner's behalf has the zygote
    for a parent: it watches its owner through a pidfd instead (``fileno``,
    readable once the owner exits)."""

    def __init__(self, sig: int) -> None:
        self.pid = int(os.environ.get(PARENT_PID_ENV, "0") or 0)
        self.fileno: int | None = None
        self.lost = False
        if not self.pid:
            return
        if os.getppid() == self.pid:
            set_parent_death_signal(sig)
            self.lost = os.getppid() != self.pid  # it died before the signal was armed
            return
        try:
            self.fileno = os.pidfd_open(self.pid)
        except (OSError, AttributeError):
            self.lost = True  # not our parent and not alive: gone before we started

    def gone(self) -> bool:
        if self.lost or not self.pid:
            return self.lost
        if self.fileno is None:
            return os.getppid() != self.pid
        return bool(select.select([self.fileno], [], [], 0)[0])
