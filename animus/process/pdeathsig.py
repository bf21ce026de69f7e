"""Parent-death signal: the kernel kills us when our parent dies (Linux).

Kept free of heavy imports: every Animus process calls it first thing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent", "set_parent_death_signal", "preexec_parent_death"]

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
