"""Where a run works, answered from ``.git`` itself when that is sure: no fork and exec.

Every runner start asks whether the project is in a git work tree, where its
top level is, and whether HEAD has a commit yet (with ``worktree: auto`` a
repository without one has nothing to branch from and the run works in the
project root). Three ``git`` processes cost 10-15 ms of a run that may take
less; git's own layout answers the common cases by reading a few files:

* no ``.git`` above the project: not a repository;
* ``.git`` found (``animus.state.gitroot.locate``), HEAD naming a branch that
  is neither a loose ref nor in ``packed-refs``: an unborn HEAD.

Anything else (a commit to branch from, a detached HEAD, a reftable or a
config that could move the work tree, a path inside ``.git``) is not sure:
``unborn`` stays None and the caller asks git, whose answer it needs anyway
to make the worktree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from animus.state.gitroot import GitLocation, locate

__all__ = ["Probe", "probe"]

# settings that change git's answers: a bare repository, a moved work tree, a reftable, included files
_CONFIG_UNSURE = ("bare=true", "bare=yes", "bare=on", "bare=1", "worktree", "refstorage", "[include")


@dataclass(frozen=True)
class Probe:
    inside: bool  # inside a git work tree
    top: Path | None  # its top level (None outside)
    unborn: bool | None  # HEAD names a branch with no commit yet; None: ask git


def probe(path: Path) -> Probe | None:
    """What ``.git`` says of ``path``; None when only git can say."""
    if not path.is_dir():
        return None
    sure, where = locate(str(path))
    if not sure:
        return None
    if where is None:
        return Probe(False, None, False)
    inner = Path(os.path.relpath(os.path.realpath(path), where.top)).parts
    if ".git" in inner or _config_unsure(where):
        return None
    return Probe(True, Path(where.top), True if _unborn(where) else None)


def _config_unsure(where: GitLocation) -> bool:
    names = [os.path.join(where.common, "config"), os.path.join(where.git_dir, "config.worktree")]
    for name in names:
        try:
            with open(name, encoding="utf-8", errors="replace") as fh:
                lines = ["".join(line.split()).lower() for line in fh]
        except FileNotFoundError:
            continue
        except OSError:
            return True
        if any(word in line for line in lines for word in _CONFIG_UNSURE):
            return True
    return os.path.exists(os.path.join(where.common, "reftable"))


def _unborn(where: GitLocation) -> bool:
    """True only when HEAD surely names a branch without a commit."""
    try:
        with open(os.path.join(where.git_dir, "HEAD")) as fh:
            head = fh.read().strip()
    except OSError:
        return False
    if not head.startswith("ref: refs/heads/"):
        return False  # detached (a commit) or something unusual
    ref = head[len("ref: "):]
    if os.path.lexists(os.path.join(where.common, ref)):
        return False
    try:
        with open(os.path.join(where.common, "packed-refs"), encoding="utf-8", errors="replace") as fh:
            return not any(line.rstrip("\n").endswith(" " + ref) for line in fh)
    except FileNotFoundError:
        return True
    except OSError:
        return False
