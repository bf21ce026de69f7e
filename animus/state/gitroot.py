"""The git common directory of a path, found by reading ``.git`` instead of running git.

Every CLI command resolves its scope, and ``git rev-parse --git-common-dir``
is a fork and exec (5-10 ms, a fifth of a ``python -c pass``) on the path of
every ``animus daemon status``. The layout git itself follows is simple: walk
up to the first ``.git``; a folder is the git dir, a file says
``gitdir: <path>`` (a linked worktree or a submodule); a git dir holding a
``commondir`` file shares the common dir it names (linked worktrees).

Where git could answer differently, this is not sure and the caller runs git: ``GIT_*`` variables that move or limit discovery, a
``.git`` owned by someone else (git's safe.directory check), a ``.git`` file
or ``commondir`` that does not read as expected, a bare repository.
"""

from __future__ import annotations

import os

__all__ = ["GitLocation", "common_dir", "locate"]

_GIT_ENV = ("GIT_DIR", "GIT_COMMON_DIR", "GIT_WORK_TREE", "GIT_CEILING_DIRECTORIES",
            "GIT_DISCOVERY_ACROSS_FILESYSTEM")


def _git_dir_of(dot_git: str) -> str | None:
    if os.path.isdir(dot_git):
        return dot_git
    try:
        with open(dot_git) as fh:
            text = fh.read(4096).strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = text[len("gitdir:"):].strip()
    return os.path.normpath(os.path.join(os.path.dirname(dot_git), target))


class GitLocation:
    """Where a repository is (a plain class: the CLI's fast path does not import ``dataclasses``)."""

    __slots__ = ("top", "git_dir", "common")

    def __init__(self, top: str, git_dir: str, common: str) -> None:
        self.top = top  # the work tree's top level: the directory holding ``.git``
        self.git_dir = git_dir  # this work tree's own git dir (its HEAD)
        self.common = common  # the common git dir (refs, objects, config), shared by linked worktrees


def locate(start: str) -> tuple[bool, GitLocation | None]:
    """(sure, where the repository around ``start`` is, or None outside one); not sure: ask git."""
    if any(name in os.environ for name in _GIT_ENV):
        return False, None
    here = os.path.realpath(start)
    while True:
        dot_git = os.path.join(here, ".git")
        if os.path.lexists(dot_git):
            git_dir = _git_dir_of(dot_git)
            if git_dir is None or not os.path.isfile(os.path.join(git_dir, "HEAD")):
                return False, None
            if os.stat(git_dir).st_uid != os.getuid():
                return False, None  # git may refuse it (safe.directory): let git say
            try:
                with open(os.path.join(git_dir, "commondir")) as fh:
                    shared = fh.read().strip()
            except FileNotFoundError:
                shared = "."
            except OSError:
                return False, None
            git_dir = os.path.realpath(git_dir)
            return True, GitLocation(here, git_dir, os.path.realpath(os.path.join(git_dir, shared)))
        parent = os.path.dirname(here)
        if parent == here:
            return True, None
        here = parent


def common_dir(start: str) -> tuple[bool, str | None]:
    """(sure, the absolute common git dir or None outside a repository); not sure: ask git."""
    sure, where = locate(start)
    return sure, where.common if where else None
