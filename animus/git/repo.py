"""One way to run git, and the questions Animus asks a repository.

Every git command Animus runs goes through :func:`git`: an argv list (never a
shell string), ``git -C <dir>``, stdin closed, a timeout, and a sanitised
environment, so a command can neither hang on a prompt nor be steered by the
caller's surroundings:

* a session of its own (no controlling terminal) and ``GIT_TERMINAL_PROMPT=0``:
  a missing credential fails instead of waiting for a password nobody will
  type (ssh cannot open ``/dev/tty``), while the operator's ``core.sshCommand``
  and credential helpers still apply; on timeout the whole process group (git
  and the hooks it started) is killed;
* ``LC_ALL=C``: messages are parsed in one language;
* ``GIT_PAGER=cat``, ``GIT_EDITOR=true``: nothing opens a pager or an editor;
* ``GIT_OPTIONAL_LOCKS=0``: ``status`` does not take ``index.lock`` in the
  operator's working copy behind their back;
* the variables that point git at another repository (``GIT_DIR``,
  ``GIT_WORK_TREE``, ``GIT_INDEX_FILE``, … as set inside a hook) are dropped;
  ``GIT_CONFIG_NOSYSTEM`` and the rest are left as they are, so system and
  user config (identity, ``safe.directory``, credential helpers) still apply.

A failure raises :class:`GitError` with the command, the exit code and the
tail of stderr. The helpers below answer the questions the worktree and
delivery modules ask; "clean" means no tracked changes (see :func:`is_clean`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from animus.errors import Internal, InvalidInput

__all__ = [
    "GIT_TIMEOUT",
    "GitError",
    "GitResult",
    "NotARepository",
    "WorktreeEntry",
    "branch_exists",
    "changed_paths",
    "checked_out_in",
    "common_dir",
    "current_branch",
    "git",
    "git_env",
    "has_changes",
    "is_clean",
    "is_git_repo",
    "last_line",
    "list_worktree_entries",
    "require_repo",
    "rev_parse",
    "top_level",
]

GIT_TIMEOUT = 60.0
_LOCATING = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
             "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX", "GIT_QUARANTINE_PATH")
_TAIL_LINES = 8


class GitError(Internal):
    """A git command failed. ``command``, ``returncode`` and ``stderr`` say how."""

    code = "git_error"

    def __init__(self, message: str, fix: str | None = None, *, command: tuple[str, ...] = (),
                 returncode: int | None = None, stderr: str = "") -> None:
        tail = "\n".join(stderr.strip().splitlines()[-_TAIL_LINES:])
        super().__init__(message, fix=fix, details={"command": list(command), "returncode": returncode,
                                                    "stderr": tail})
        self.command = command
        self.returncode = returncode
        self.stderr = tail


class NotARepository(InvalidInput):
    """A directory that must be a git working tree is not one."""


@dataclass(frozen=True)
class GitResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every git command runs with (see the module doc)."""
    env = {k: v for k, v in os.environ.items() if k not in _LOCATING}
    env.pop("LANGUAGE", None)
    env.update({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_PAGER": "cat", "PAGER": "cat",
                "GIT_EDITOR": "true", "GIT_SEQUENCE_EDITOR": "true", "GIT_MERGE_AUTOEDIT": "no",
                "GIT_OPTIONAL_LOCKS": "0"})
    env.update(extra or {})
    return env


def last_line(text: str) -> str:
    """The last non-empty line of git's output: what a one-line message can quote."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def git(cwd: Path | str, *args: str, check: bool = True, timeout: float = GIT_TIMEOUT,
        env: dict[str, str] | None = None) -> GitResult:
    """Run ``git -C <cwd> <args>``; raise :class:`GitError` on failure when ``check``."""
    argv = ("git", "-C", str(cwd), *args)
    shown = "git " + " ".join(args)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=git_env(env), start_new_session=True)
    except FileNotFoundError:
        raise GitError("git is not installed (or not on PATH)", fix="install git", command=argv) from None
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # git and its hooks: they share the new session's group
            out, err = proc.communicate()
            raise GitError(f"{shown} timed out after {timeout:g}s in {cwd}", command=argv, stderr=err,
                           fix=f"run git -C {cwd} {' '.join(args)} by hand to see what it waits for") from None
    result = GitResult(argv, proc.returncode, out, err)
    if check and not result.ok:
        raise GitError(f"{shown} failed in {cwd} (exit {proc.returncode}): {last_line(err or out)}",
                       command=argv, returncode=proc.returncode, stderr=err or out,
                       fix=f"run git -C {cwd} {' '.join(args)} by hand to see the whole error")
    return result


def is_git_repo(path: Path) -> bool:
    """True when ``path`` is inside a git working tree (a bare repository is not)."""
    if not Path(path).is_dir():
        return False
    out = git(path, "rev-parse", "--is-inside-work-tree", check=False)
    return out.ok and out.stdout.strip() == "true"


def require_repo(path: Path) -> Path:
    """The top level of the working tree at ``path``, or :class:`NotARepository`."""
    if not is_git_repo(path):
        raise NotARepository(f"{path} is not a git repository, and this workflow needs a worktree",
                             fix=f"git -C {path} init && git -C {path} commit --allow-empty -m init, "
                                 "or set worktree: skip")
    return top_level(path)


def common_dir(path: Path) -> Path:
    """The repository's common git directory, shared by all its worktrees."""
    return Path(git(path, "rev-parse", "--path-format=absolute", "--git-common-dir").stdout.strip())


def top_level(path: Path) -> Path:
    return Path(git(path, "rev-parse", "--show-toplevel").stdout.strip())


def current_branch(path: Path) -> str | None:
    """The branch checked out at ``path``, or None when HEAD is detached."""
    out = git(path, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return out.stdout.strip() if out.ok else None


def rev_parse(path: Path, rev: str) -> str | None:
    """The commit ``rev`` names, or None when it names none (an unborn HEAD included)."""
    out = git(path, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
    return out.stdout.strip() if out.ok else None


def branch_exists(path: Path, name: str) -> bool:
    return git(path, "show-ref", "--verify", "--quiet", f"refs/heads/{name}", check=False).ok


def changed_paths(path: Path, *, untracked: bool = False) -> list[str]:
    """Paths with staged or unstaged changes (and untracked ones when asked)."""
    mode = "--untracked-files=all" if untracked else "--untracked-files=no"
    out = git(path, "status", "--porcelain=v1", "-z", mode).stdout
    entries = [e for e in out.split("\0") if e]
    paths: list[str] = []
    skip = False
    for entry in entries:
        if skip:  # the "from" half of a rename record
            skip = False
            continue
        paths.append(entry[3:])
        skip = entry[0] in "RC"
    return paths


def is_clean(path: Path) -> bool:
    """No tracked changes, staged or not, and no unresolved merge.

    Untracked files do not count: a fast-forward never touches them unless the
    incoming commits add the same path, which delivery checks separately.
    """
    return not changed_paths(path)


def has_changes(path: Path) -> bool:
    """Anything a removal would lose: tracked changes or untracked (not ignored) files."""
    return bool(changed_paths(path, untracked=True))


@dataclass(frozen=True)
class WorktreeEntry:
    """One record of ``git worktree list --porcelain``."""

    path: Path
    head: str | None
    branch: str | None  # short name; None when detached or bare
    locked: str | None = None  # the lock reason ("" when locked without one)
    prunable: bool = False
    bare: bool = False


def list_worktree_entries(path: Path) -> list[WorktreeEntry]:
    out = git(path, "worktree", "list", "--porcelain", "-z").stdout
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    for item in out.split("\0") + [""]:
        if item:
            key, _, value = item.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            branch = fields.get("branch")
            entries.append(WorktreeEntry(
                path=Path(fields["worktree"]), head=fields.get("HEAD"),
                branch=branch.removeprefix("refs/heads/") if branch else None,
                locked=fields.get("locked"), prunable="prunable" in fields, bare="bare" in fields))
        fields = {}
    return entries


def checked_out_in(path: Path, branch: str) -> Path | None:
    """The worktree (the operator's copy or any other) that has ``branch`` checked out."""
    for entry in list_worktree_entries(path):
        if entry.branch == branch and not entry.prunable:
            return entry.path
    return None
