"""The transports' access token: ``<state root>/token``, mode 0600.

Every HTTP request to a transport must carry it (``Authorization: Bearer``,
or the cookie set by ``/?token=…``). The first transport to start creates it
with ``secrets.token_urlsafe``; later starts and ``animus web open`` read the
same file, so a URL printed once keeps working across daemon restarts until
the operator deletes the file (which rotates the token at the next start).

Creation is atomic and first-writer-wins: the token is written to a private
temp file and hard-linked into place, so two transports starting at once
agree on one token and nobody ever reads a half-written file.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

__all__ = ["TOKEN_FILE", "ensure_token", "read_token"]

TOKEN_FILE = "token"


def read_token(state_root: Path) -> str | None:
    try:
        text = (state_root / TOKEN_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def ensure_token(state_root: Path) -> str:
    """Return the token, creating the file (0600) if it does not exist yet."""
    path = state_root / TOKEN_FILE
    existing = read_token(state_root)
    if existing is not None:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, 0o600)  # tighten a copy restored with loose permissions
        return existing
    state_root.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{TOKEN_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask says
        os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process won the race: use theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    token = read_token(state_root)
    if token is None:
        raise RuntimeError(f"{path} is empty; delete it and restart the daemon")
    return token
