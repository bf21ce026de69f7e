"""One lock per repository for git operations that touch shared state.

Each workflow run is its own process, and several run at once against the
same repository. Git protects single ref updates with its own ``*.lock``
files, but not sequences: ``git worktree prune`` in one process can delete
the administrative directory another process's ``git worktree add`` has just
created, concurrent ref packing fails with "Unable to create
'packed-refs.lock'", and "read the target tip, merge, move the target" is
only correct if nobody moves the target in between. So every operation on
the shared repository (worktree add / remove / prune, merges into the target
branch, ref updates) runs while holding :class:`RepoLock`; commits inside a
run's own worktree touch only that run's branch and do not need it.

The lock is ``fcntl.flock`` on a file the caller names. The daemon and its
runners use ``<scope>/run/git.lock`` (``Scope.run_dir() / "git.lock"``):
the scope is derived from the git common root, so every process working on
the same repository finds the same file. The kernel drops a flock when its
holder dies, so a SIGKILLed runner never leaves the repository locked. The
holder's pid is written into the file so a timeout can say who holds it.

The lock is reentrant within a process (the same ``RepoLock`` object may be
entered again, from the same thread, by a function called with it held);
other threads of the process wait as other processes do.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from animus.errors import Unavailable

__all__ = ["LOCK_TIMEOUT", "LockTimeout", "RepoLock"]

LOCK_TIMEOUT = 900.0  # longer than a merge whose hook runs a test suite (delivery.HOOK_TIMEOUT) holds it


class LockTimeout(Unavailable):
    """The repository lock stayed held by another process past the deadline."""


class RepoLock:
    """A cross-process, per-repository lock (see the module doc)."""

    def __init__(self, path: Path | str, timeout: float = LOCK_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"RepoLock({str(self.path)!r})"

    @property
    def held(self) -> bool:
        """True while this process holds the lock through this object."""
        return self._depth > 0

    def acquire(self, timeout: float | None = None) -> None:
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        if not self._thread_lock.acquire(timeout=wait):
            raise self._timeout_error(wait)
        if self._depth:
            self._depth += 1
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._wait_flock(fd, deadline, wait)
        except BaseException:
            self._thread_lock.release()
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd, self._depth = fd, 1

    def _wait_flock(self, fd: int, deadline: float, wait: float) -> None:
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._timeout_error(wait) from None
                time.sleep(pause)  # polling: flock has no timeout of its own
                pause = min(pause * 2, 0.1)
            except BaseException:
                os.close(fd)
                raise

    def release(self) -> None:
        if not self._depth:
            raise RuntimeError(f"{self!r} released without being held")
        self._depth -= 1
        if not self._depth and self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._thread_lock.release()

    def _timeout_error(self, wait: float) -> LockTimeout:
        try:
            holder = self.path.read_text().strip() or "unknown"
        except OSError:
            holder = "unknown"
        return LockTimeout(f"git lock {self.path} is held by pid {holder} for more than {wait:g}s",
                           fix=f"wait for that process to finish its git operation (ps -p {holder})")

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
