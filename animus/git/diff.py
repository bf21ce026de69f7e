"""A run's changes against its base, file by file, for an operator to read.

A run's work is in one of two places. While its worktree exists, the work
is the worktree itself: commits on the run's branch *and* what is still
uncommitted, untracked files included (a run without ``post_success.merge``
leaves its work there, uncommitted). Once the worktree is removed, the work
is a commit: the tip that delivery recorded, or the branch's tip.
:func:`worktree_changes` and :func:`commit_changes` read each.

Everything goes through :func:`animus.git.repo.git` (argv lists, never a
shell) and is read-only. What comes back is bounded by :class:`DiffLimits`:
at most ``max_files`` files are listed; a file's patch is made only when
both of its sides are at most ``max_file_bytes`` (git itself treats bigger
files as binary: ``core.bigFileThreshold``, so one patch is a few times that
at most), and patches stop once ``max_patch_bytes`` of patch text is used.
A file without a patch says why (``omitted``). External diff drivers and
textconv filters are off, and paths are literal (a file named
``:(exclude)x`` is just a file).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animus.errors import NotFound
from animus.git.repo import GitResult, git, rev_parse

__all__ = ["Changes", "DiffLimits", "FileChange", "commit_changes", "worktree_changes"]

_STATUS = {"A": "added", "M": "modified", "D": "deleted", "T": "type-changed", "U": "unmerged"}
_PATCH = ("diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")


@dataclass(frozen=True)
class DiffLimits:
    max_files: int = 300
    max_patch_bytes: int = 1 << 20
    max_file_bytes: int = 128 << 10


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # added | modified | deleted | type-changed | unmerged
    added: int | None = None  # lines; None when binary or not counted
    deleted: int | None = None
    binary: bool = False
    patch: str | None = None
    omitted: str | None = None  # why there is no patch


@dataclass(frozen=True)
class Changes:
    source: str  # "worktree" (with uncommitted work) or "commit"
    base: str
    head: str | None  # the commit compared (for a worktree: its HEAD, under the uncommitted work)
    files: tuple[FileChange, ...]
    total_files: int
    limits: DiffLimits

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "base": self.base, "head": self.head, "total_files": self.total_files,
                "truncated": self.total_files > len(self.files), "limits": dataclasses.asdict(self.limits),
                "files": [dataclasses.asdict(f) for f in self.files]}


@dataclass(frozen=True)
class _Entry:
    path: str
    status: str
    added: int | None
    deleted: int | None
    untracked: bool = False


def _git(cwd: Path, limits: DiffLimits, *args: str, check: bool = True) -> GitResult:
    return git(cwd, "--literal-pathspecs", "-c", f"core.bigFileThreshold={limits.max_file_bytes}", *args,
               check=check)


def _commit(repo: Path, rev: str, what: str) -> str:
    sha = rev_parse(repo, rev)
    if sha is None:
        raise NotFound(f"the {what} {rev} is not a commit in {repo}",
                       fix=f"git -C {repo} log --oneline -5 (was the branch deleted or rewritten?)")
    return sha


def _listing(cwd: Path, limits: DiffLimits, *revs: str) -> list[_Entry]:
    """``git diff --raw --numstat -z``: the status of each path, then its line counts."""
    tokens = _git(cwd, limits, "diff", "--raw", "--numstat", "-z", "--no-renames", *revs).stdout.split("\0")
    status: dict[str, str] = {}
    counts: dict[str, tuple[int | None, int | None]] = {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith(":") and i + 1 < len(tokens):
            status[tokens[i + 1]] = token.split()[-1][:1]
            i += 2
            continue
        if token:
            added, deleted, path = token.split("\t", 2)
            counts[path] = (None if added == "-" else int(added), None if deleted == "-" else int(deleted))
        i += 1
    return [_Entry(p, _STATUS.get(s, s), *counts.get(p, (None, None))) for p, s in status.items()]


def _untracked(worktree: Path, limits: DiffLimits) -> list[_Entry]:
    out = _git(worktree, limits, "ls-files", "--others", "--exclude-standard", "-z").stdout
    return [_Entry(p, "added", None, None, untracked=True) for p in out.split("\0") if p]


def _size(cwd: Path, blob: str, on_disk: Path | None) -> int | None:
    if on_disk is not None:
        try:
            return os.lstat(on_disk).st_size
        except OSError:
            return None
    out = git(cwd, "cat-file", "-s", blob, check=False)
    return int(out.stdout) if out.ok and out.stdout.strip().isdigit() else None


def _patch(cwd: Path, limits: DiffLimits, entry: _Entry, revs: tuple[str, ...]) -> str | None:
    """The file's patch; None when it is not UTF-8 text (the git helper reads text)."""
    try:
        if entry.untracked:  # exit 1 means "they differ"
            return _git(cwd, limits, *_PATCH, "--no-index", "--", "/dev/null", entry.path, check=False).stdout
        return _git(cwd, limits, *_PATCH, *revs, "--", entry.path).stdout
    except UnicodeDecodeError:
        return None


def _count(patch: str) -> tuple[int, int]:
    lines = patch.splitlines()
    added = sum(1 for ln in lines if ln.startswith("+") and not ln.startswith("+++ "))
    deleted = sum(1 for ln in lines if ln.startswith("-") and not ln.startswith("--- "))
    return added, deleted


class _Reader:
    """Turns listed entries into FileChanges, spending the patch budget in order."""

    def __init__(self, cwd: Path, limits: DiffLimits, revs: tuple[str, ...], worktree: bool) -> None:
        self.cwd, self.limits, self.revs, self.worktree = cwd, limits, revs, worktree
        self.used = 0

    def binary_reason(self, entry: _Entry) -> str:
        base, head = self.revs[0], (self.revs[1] if len(self.revs) > 1 else None)
        deleted = entry.status == "deleted"
        on_disk = self.cwd / entry.path if self.worktree and not deleted else None
        size = _size(self.cwd, f"{base if deleted else head}:{entry.path}", on_disk)
        if size is not None and size > self.limits.max_file_bytes:
            return f"{size} bytes: over the {self.limits.max_file_bytes}-byte limit for showing a file"
        return "binary file"

    def read(self, entry: _Entry) -> FileChange:
        change = FileChange(entry.path, entry.status, entry.added, entry.deleted)
        if entry.path.endswith("/"):  # an untracked folder that is a repository of its own
            return dataclasses.replace(change, omitted="a folder with a git repository of its own")
        if not entry.untracked and entry.added is None:
            return dataclasses.replace(change, binary=True, omitted=self.binary_reason(entry))
        if self.used >= self.limits.max_patch_bytes:
            return self.over_budget(change, entry)
        patch = _patch(self.cwd, self.limits, entry, self.revs)
        if patch is None:
            return dataclasses.replace(change, omitted="not UTF-8 text")
        if "\nBinary files " in patch or patch.startswith("Binary files "):
            return dataclasses.replace(change, binary=True, omitted=self.binary_reason(entry))
        if entry.untracked:
            change = dataclasses.replace(change, added=_count(patch)[0], deleted=0)
        size = len(patch.encode())
        if self.used + size > self.limits.max_patch_bytes:
            self.used = self.limits.max_patch_bytes
            return self.over_budget(change, entry)
        self.used += size
        return dataclasses.replace(change, patch=patch)

    def over_budget(self, change: FileChange, entry: _Entry) -> FileChange:
        revs = " ".join(self.revs)
        why = (f"the diff is over its {self.limits.max_patch_bytes}-byte limit: "
               f"git -C {self.cwd} diff {revs} -- {entry.path}")
        if entry.untracked:  # git counted the tracked ones in the listing; count this one too
            out = _git(self.cwd, self.limits, *_PATCH, "--numstat", "--no-index", "--", "/dev/null", entry.path,
                       check=False).stdout.split("\t")
            if len(out) == 3 and out[0].isdigit():
                change = dataclasses.replace(change, added=int(out[0]), deleted=0)
        return dataclasses.replace(change, omitted=why)


def _changes(source: str, base: str, head: str | None, entries: list[_Entry], reader: _Reader) -> Changes:
    entries = sorted(entries, key=lambda e: e.path)
    shown = tuple(reader.read(e) for e in entries[: reader.limits.max_files])
    return Changes(source, base, head, shown, len(entries), reader.limits)


def worktree_changes(worktree: Path, base: str, limits: DiffLimits = DiffLimits()) -> Changes:
    """The worktree as it is (commits, uncommitted edits, untracked files) against ``base``."""
    base_sha = _commit(worktree, base, "base commit")
    entries = _listing(worktree, limits, base_sha) + _untracked(worktree, limits)
    reader = _Reader(worktree, limits, (base_sha,), worktree=True)
    return _changes("worktree", base_sha, rev_parse(worktree, "HEAD"), entries, reader)


def commit_changes(repo: Path, base: str, head: str, limits: DiffLimits = DiffLimits()) -> Changes:
    """The commit ``head`` against ``base``, in the repository at ``repo``."""
    base_sha, head_sha = _commit(repo, base, "base commit"), _commit(repo, head, "commit")
    reader = _Reader(repo, limits, (base_sha, head_sha), worktree=False)
    return _changes("commit", base_sha, head_sha, _listing(repo, limits, base_sha, head_sha), reader)
