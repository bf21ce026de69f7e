"""Whether a process id is alive: the one way to ask (no psutil, cheap to import)."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: object) -> bool:
    """True if ``pid`` names a live process (one we may not signal counts as alive)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
