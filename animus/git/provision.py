"""A worktree that can build: what git does not track, brought in from the project.

A fresh worktree has only tracked files; ``.env``, local config and installed
dependencies are missing. The project's ``worktrees:`` block
(:class:`animus.git.spec.WorktreeSetup`) lists paths or globs, relative to the
project root, to **copy** into each new worktree or to **symlink** from it
(shared, so a run that writes through the link writes into the project).

Rules:

* a match whose real path is outside the project root (through ``..``, an
  absolute pattern, or a symlink pointing out) is refused and reported, never
  followed; so is anything under ``.git`` or under the worktrees root;
* a path that already exists in the worktree (a tracked file, or one copied
  on an earlier attempt of the same run) is left alone, so provisioning is
  idempotent and never overwrites tracked content;
* what was brought in is recorded in the worktree's git directory
  (``animus-provisioned``), and :func:`animus.git.delivery.commit_all` leaves
  those paths out of the run's commit; paths git does not ignore are reported
  in ``not_ignored`` so the runner can warn (an agent's own ``git add -A``
  would commit them).

The setup command itself is run by the runner (its output is phase output);
this module only keeps its "done once" marker, also in the worktree's git
directory, so a resumed run does not run it again and removal forgets it.
"""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from animus.git.repo import git
from animus.git.spec import WorktreeSetup

__all__ = ["Provisioned", "mark_setup_done", "not_ignored", "provision", "provisioned_paths", "setup_done"]

_RECORD = "animus-provisioned"
_SETUP_MARK = "animus-setup-done"


@dataclass(frozen=True)
class Provisioned:
    copied: tuple[str, ...] = ()
    linked: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()     # already in the worktree: left alone
    refused: tuple[str, ...] = ()      # outside the project root (or .git): not followed
    not_ignored: tuple[str, ...] = ()  # brought in, but git would commit them


def _git_dir(worktree: Path) -> Path:
    return Path(git(worktree, "rev-parse", "--absolute-git-dir").stdout.strip())


def _matches(root: Path, pattern: str) -> list[Path]:
    if glob.has_magic(pattern):
        return [Path(m) for m in sorted(glob.glob(pattern, root_dir=root, recursive=True, include_hidden=True))]
    return [Path(pattern)] if os.path.lexists(root / pattern) else []


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _bring(src: Path, dest: Path, link: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link:
        os.symlink(src, dest, target_is_directory=src.is_dir())
    elif src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dest, symlinks=True)
    else:
        shutil.copy2(src, dest, follow_symlinks=False)


def provision(project_root: Path, worktree: Path, setup: WorktreeSetup, *,
              exclude_root: Path | None = None) -> Provisioned:
    """Copy / symlink ``setup.copy`` / ``setup.symlink`` from the project into ``worktree``.

    ``exclude_root`` (the worktrees root) is never matched, should it sit
    inside the project.
    """
    root = project_root.resolve()
    fenced = [root / ".git", worktree.resolve()] + ([exclude_root.resolve()] if exclude_root else [])
    done: dict[str, list[str]] = {"copied": [], "linked": [], "existing": [], "refused": []}
    for patterns, link in ((setup.copy, False), (setup.symlink, True)):
        for pattern in patterns:
            for rel in _matches(root, pattern):
                src = root / rel
                real = src.resolve()
                if not _inside(real, root) or any(_inside(real, f) or _inside(src, f) for f in fenced):
                    done["refused"].append(str(rel))
                elif os.path.lexists(worktree / rel):
                    done["existing"].append(str(rel))
                else:
                    _bring(src, worktree / rel, link)
                    done["linked" if link else "copied"].append(str(rel))
    brought = done["copied"] + done["linked"]
    _record(worktree, brought)
    return Provisioned(**{k: tuple(v) for k, v in done.items()}, not_ignored=tuple(not_ignored(worktree, brought)))


def not_ignored(worktree: Path, paths: list[str]) -> list[str]:
    """Those of ``paths`` that git would add (no ignore rule matches them)."""
    if not paths:
        return []
    out = git(worktree, "check-ignore", "--no-index", "--", *paths, check=False)
    ignored = {line.strip() for line in out.stdout.splitlines()}
    return [p for p in paths if p not in ignored]


def _record(worktree: Path, paths: list[str]) -> None:
    if not paths:
        return
    record = _git_dir(worktree) / _RECORD
    known = provisioned_paths(worktree)
    with record.open("a") as fh:
        fh.writelines(f"{p}\n" for p in paths if p not in known)


def provisioned_paths(worktree: Path) -> list[str]:
    """The paths provisioning brought into ``worktree`` (relative to it)."""
    record = _git_dir(worktree) / _RECORD
    return [ln for ln in record.read_text().splitlines() if ln] if record.exists() else []


def setup_done(worktree: Path) -> bool:
    """True once :func:`mark_setup_done` was called for this worktree."""
    return (_git_dir(worktree) / _SETUP_MARK).exists()


def mark_setup_done(worktree: Path) -> None:
    (_git_dir(worktree) / _SETUP_MARK).write_text("done\n")
