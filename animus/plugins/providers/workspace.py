"""Did an agent run change its working directory? A cheap fingerprint taken before and after.

A run whose tool uses were denied is only a problem if it then changed
nothing (the reference's "explain empty edits"): the plugin compares a
fingerprint of the directory (every file's path, size and mtime, ``.git``
internals and dependency caches left out) from before the run with one from
after. Past ``MAX_FILES`` the answer is "unknown" (None) rather than a slow walk.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["MAX_FILES", "fingerprint"]

MAX_FILES = 50_000
_SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache"})


def fingerprint(root: str | Path) -> str | None:
    """A digest of the tree under ``root``; None when it is too big to walk or unreadable."""
    digest = hashlib.blake2b(digest_size=16)
    count = 0
    try:
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            for name in sorted(files):
                count += 1
                if count > MAX_FILES:
                    return None
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="surrogateescape"))
    except OSError:
        return None
    return digest.hexdigest()
