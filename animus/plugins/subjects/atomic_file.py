"""Crash-safe file replacement and a lock for writers sharing a directory.

A file people also edit must never be left half-written: ``write_atomic``
writes a temporary file in the same directory (so the rename stays on one
file system), fsyncs it, renames it over the target and fsyncs the
directory, so after a crash the name holds the old bytes or the new ones.
With ``create=True`` the final step is ``os.link``, which fails if the name
exists: creating a file and claiming its name are one atomic step.

``locked_directory`` takes an ``flock`` on the directory itself rather than
on a lock file, so nothing extra appears in the repository. It serializes
cooperating writers only; a person's editor takes no lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from animus.state.files import atomic_write

__all__ = ["write_atomic", "locked_directory", "content_hash"]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, text: str, create: bool = False) -> None:
    """Replace (or, with ``create``, newly make) ``path`` with ``text``, all or nothing."""
    atomic_write(path, text.encode("utf-8"), create=create)


@contextmanager
def locked_directory(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` for the duration of the block."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
