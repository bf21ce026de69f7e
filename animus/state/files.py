"""The one way Animus replaces a file: all or nothing, durable.

``atomic_write`` writes a temporary file beside the target (one file system,
so the rename is atomic), fsyncs it, renames it over the target and fsyncs
the directory: after a crash the name holds the old bytes or the new ones,
never a mix, and no temp file is left behind. With ``create=True`` the last
step is ``os.link``, which fails if the name exists, so creating a file and
claiming its name are one step. With ``durable=False`` the fsyncs are
skipped (still all or nothing for every reader): for records that mean
nothing after a machine crash, such as the pids of processes that died in it
(a command's process-group record) or a command phase's session file; a
process crash leaves the page cache intact, and two fsyncs are 1-2 ms.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["atomic_json", "atomic_write", "file_identity"]


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644, create: bool = False,
                 durable: bool = True) -> None:
    """Replace (or, with ``create``, newly make) ``path`` with ``data``."""
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    placed = False
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileNotFoundError:  # the directory is made only when missing: one syscall less per write
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            view = memoryview(payload)
            while view:  # os.write may write less than asked (a full disk, a signal)
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if create:
            os.link(tmp, path)  # FileExistsError if the name is taken
        else:
            os.replace(tmp, path)
            placed = True  # the temp name is gone with the rename
    finally:
        if not placed:
            tmp.unlink(missing_ok=True)
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def file_identity(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """(inode, size, mtime_ns) of ``path``: another value means another version of the file (an
    ``atomic_write`` is a new inode). For caches of what a file says; ``OSError`` as ``os.stat``."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def atomic_json(path: Path, value: Any, mode: int = 0o644, indent: int | None = None, durable: bool = True) -> None:
    atomic_write(path, json.dumps(value, indent=indent, sort_keys=indent is not None).encode(), mode,
                 durable=durable)
