"""The YAML that asks for worktrees and delivery, as frozen dataclasses.

Three shapes, parsed from plain YAML values (no I/O here):

``worktree`` (per workflow, and per phase) — reference §B.3, v0.5.5::

    worktree: auto            # auto | required | skip
    worktree: {mode: auto, cleanup: true, base_ref: develop}

``auto`` runs in a worktree in a git project and in the project root
otherwise; ``required`` fails clearly outside git; ``skip`` runs in the
project root. A run has one worktree, made before its first phase, so at
phase level only ``mode`` means something (``skip`` runs that phase in the
project root); ``base_ref`` and ``cleanup`` there are refused.

``post_success.merge`` — reference §B.4::

    post_success:
      merge:
        strategy: squash          # merge (default) | squash | rebase
        target_branch: main       # default main
        auto_merge: true          # default false: merge only when asked (or --auto-merge)
        create_pr: true           # or {remote: origin, repository: owner/name,
                                  #     api_base: https://ghe.example/api/v3, draft: false}
        cleanup_worktree: true    # default true, see MergeSpec

``worktrees`` — per project, in ``.animus/config.yaml`` (what a fresh
worktree lacks because git does not track it)::

    worktrees:
      copy: [.env, "config/*.local.yaml"]   # paths or globs, relative to the project root
      symlink: [node_modules, .venv]        # shared, not copied
      setup: npm ci                          # once, before the first phase (string: sh -c)
      setup_timeout_secs: 600
      teardown: [docker, compose, down]      # before the worktree is removed
      teardown_timeout_secs: 120

A bad value raises :class:`SpecError` (an ``InvalidInput``) whose ``where``
is the field path; the caller adds ``file:line``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, NoReturn

from animus.errors import InvalidInput
from animus.git.names import valid_branch_name

__all__ = [
    "MergeSpec",
    "PullRequestSpec",
    "SpecError",
    "Strategy",
    "WorktreeMode",
    "WorktreeSetup",
    "WorktreeSpec",
    "parse_merge",
    "parse_post_success",
    "parse_worktree",
    "parse_worktree_setup",
    "remove_after_success",
]


class SpecError(InvalidInput):
    """A bad ``worktree`` / ``post_success`` / ``worktrees`` value; ``where`` is its field path."""

    def __init__(self, where: str, reason: str, fix: str) -> None:
        super().__init__(f"{where}: {reason}", fix=fix, details={"field": where})
        self.where = where
        self.reason = reason


class WorktreeMode(StrEnum):
    AUTO = "auto"
    REQUIRED = "required"
    SKIP = "skip"


class Strategy(StrEnum):
    MERGE = "merge"    # a merge commit on the target (--no-ff), the run's commits kept
    SQUASH = "squash"  # one commit on the target with the run's whole diff
    REBASE = "rebase"  # the run's commits replayed on the target, then a fast-forward


@dataclass(frozen=True)
class WorktreeSpec:
    mode: WorktreeMode = WorktreeMode.AUTO
    cleanup: bool = True        # remove the worktree after a successful run (branch kept)
    base_ref: str | None = None  # None: the target branch if it exists, else HEAD


@dataclass(frozen=True)
class PullRequestSpec:
    remote: str = "origin"
    repository: str | None = None  # owner/name; None: parsed from the remote's URL
    api_base: str | None = None    # None: $GITHUB_API_URL, else https://api.github.com
    draft: bool = False


@dataclass(frozen=True)
class MergeSpec:
    """``post_success.merge``.

    ``cleanup_worktree`` defaults to **true**. The reference flags a conflict
    (the original's docs say true, its serde default is false); Animus takes
    the documented value because delivery commits everything left in the
    worktree onto the run's branch and the branch is always kept, so removing
    the checkout loses nothing, while keeping one full checkout per finished
    run fills the disk. Only a successfully delivered run is cleaned up: a
    blocked or failed run keeps its worktree for inspection.
    """

    strategy: Strategy = Strategy.MERGE
    target_branch: str = "main"
    create_pr: PullRequestSpec | None = None
    auto_merge: bool = False
    cleanup_worktree: bool = True


@dataclass(frozen=True)
class WorktreeSetup:
    copy: tuple[str, ...] = ()
    symlink: tuple[str, ...] = ()
    setup: tuple[str, ...] | None = None
    setup_timeout_secs: float = 600.0
    teardown: tuple[str, ...] | None = None
    teardown_timeout_secs: float = 120.0


def remove_after_success(worktree: WorktreeSpec, merge: MergeSpec | None) -> bool:
    """Whether a run that ended well removes its worktree: both switches must allow it.

    The caller still keeps a worktree that has uncommitted changes
    (``repo.has_changes``): with no delivery configured nothing committed them.
    """
    return worktree.cleanup and (merge is None or merge.cleanup_worktree)


# parsing ---------------------------------------------------------------------

def _fields(value: Any, where: str, known: tuple[str, ...], example: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(where, f"expected a mapping, got {_show(value)}", fix=f"write {where}: {example}")
    for key in value:
        if key not in known:
            import difflib  # a typo's suggestion: not imported by every process that reads a spec

            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise SpecError(f"{where}.{key}", "unknown key", fix=f"{hint}known keys: {', '.join(known)}")
    return value


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _choice(value: Any, where: str, enum: type[StrEnum]) -> Any:
    names = [m.value for m in enum]
    if isinstance(value, str) and value in names:
        return enum(value)
    _raise(where, f"must be one of {', '.join(names)}, got {_show(value)}",
           f"write {where.rsplit('.', 1)[-1]}: {names[0]}")


def _raise(where: str, reason: str, fix: str) -> NoReturn:
    raise SpecError(where, reason, fix)


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    _raise(where, f"expected true or false, got {_show(value)}", f"write {where.rsplit('.', 1)[-1]}: true")


def _text(value: Any, where: str) -> str:
    if isinstance(value, str) and value.strip() and "\n" not in value:
        return value.strip()
    _raise(where, f"expected a one-line string, got {_show(value)}", "write a plain value on one line")


def _branch(value: Any, where: str) -> str:
    name = _text(value, where)
    if not valid_branch_name(name.removeprefix("refs/heads/")):
        _raise(where, f"'{name}' is not a valid branch name", "use a name git accepts, e.g. main")
    return name.removeprefix("refs/heads/")


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    _raise(where, f"expected a number of seconds > 0, got {_show(value)}", "write e.g. 600")


def parse_worktree(value: Any, where: str = "worktree", *, phase: bool = False) -> WorktreeSpec:
    """``auto | required | skip`` or ``{mode, cleanup, base_ref}``; None means the default."""
    if value is None:
        return WorktreeSpec()
    if isinstance(value, str):
        return WorktreeSpec(mode=_choice(value, where, WorktreeMode))
    f = _fields(value, where, ("mode", "cleanup", "base_ref"), "{mode: auto, cleanup: true, base_ref: main}")
    if phase:
        for key in ("cleanup", "base_ref"):
            if key in f:
                _raise(f"{where}.{key}", "is set per workflow: a run's phases share one worktree",
                       f"move {key} to the workflow's worktree block")
    base = f.get("base_ref")
    return WorktreeSpec(
        mode=_choice(f.get("mode", "auto"), f"{where}.mode", WorktreeMode),
        cleanup=_bool(f.get("cleanup", True), f"{where}.cleanup"),
        base_ref=None if base is None else _text(base, f"{where}.base_ref"))


def _pull_request(value: Any, where: str) -> PullRequestSpec | None:
    if value is None or isinstance(value, bool):
        return PullRequestSpec() if value else None
    f = _fields(value, where, ("remote", "repository", "api_base", "draft"),
                "true, or {remote: origin, repository: owner/name}")
    repo = f.get("repository")
    if repo is not None and (not isinstance(repo, str) or len(repo.strip().split("/")) != 2
                             or not all(repo.strip().split("/"))):
        _raise(f"{where}.repository", f"expected owner/name, got {_show(repo)}", "write repository: owner/name")
    api = f.get("api_base")
    if api is not None and not (isinstance(api, str) and api.startswith(("https://", "http://"))):
        _raise(f"{where}.api_base", f"expected an http(s) URL, got {_show(api)}",
               "write api_base: https://github.example.com/api/v3")
    return PullRequestSpec(
        remote=_text(f.get("remote", "origin"), f"{where}.remote"),
        repository=None if repo is None else repo.strip(),
        api_base=None if api is None else api.rstrip("/"),
        draft=_bool(f.get("draft", False), f"{where}.draft"))


def parse_merge(value: Any, where: str = "post_success.merge") -> MergeSpec:
    f = _fields(value, where, ("strategy", "target_branch", "create_pr", "auto_merge", "cleanup_worktree"),
                "{strategy: squash, target_branch: main, auto_merge: true}")
    return MergeSpec(
        strategy=_choice(f.get("strategy", "merge"), f"{where}.strategy", Strategy),
        target_branch=_branch(f.get("target_branch", "main"), f"{where}.target_branch"),
        create_pr=_pull_request(f.get("create_pr"), f"{where}.create_pr"),
        auto_merge=_bool(f.get("auto_merge", False), f"{where}.auto_merge"),
        cleanup_worktree=_bool(f.get("cleanup_worktree", True), f"{where}.cleanup_worktree"))


def parse_post_success(value: Any, where: str = "post_success") -> MergeSpec | None:
    """``post_success: {merge: {...}}``; None when there is no merge block."""
    if value is None:
        return None
    f = _fields(value, where, ("merge",), "{merge: {strategy: squash, auto_merge: true}}")
    return None if f.get("merge") is None else parse_merge(f["merge"], f"{where}.merge")


def _command(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip():
        return ("sh", "-c", value)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    _raise(where, f"expected a command string or a list of arguments, got {_show(value)}",
                  "write e.g. setup: npm ci, or setup: [npm, ci]")


def _paths(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        _raise(where, f"expected a list of paths or globs, got {_show(value)}", "write e.g. [.env, 'config/*.local']")
    out: list[str] = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        pattern = _text(item, at)
        parts = PurePosixPath(pattern).parts
        if pattern.startswith(("/", "~")) or ".." in parts:
            _raise(at, f"'{pattern}' reaches outside the project root", "give a path relative to the project root")
        if parts and parts[0] == ".git":
            _raise(at, "git's own directory cannot be copied into a worktree", "remove this entry")
        out.append(pattern)
    return tuple(out)


def parse_worktree_setup(value: Any, where: str = "worktrees") -> WorktreeSetup:
    """The per-project ``worktrees:`` block of ``.animus/config.yaml``."""
    if value is None:
        return WorktreeSetup()
    f = _fields(value, where, ("copy", "symlink", "setup", "setup_timeout_secs", "teardown",
                               "teardown_timeout_secs"), "{copy: [.env], setup: npm ci}")
    return WorktreeSetup(
        copy=_paths(f.get("copy"), f"{where}.copy"),
        symlink=_paths(f.get("symlink"), f"{where}.symlink"),
        setup=_command(f.get("setup"), f"{where}.setup"),
        setup_timeout_secs=_seconds(f.get("setup_timeout_secs", 600), f"{where}.setup_timeout_secs"),
        teardown=_command(f.get("teardown"), f"{where}.teardown"),
        teardown_timeout_secs=_seconds(f.get("teardown_timeout_secs", 120), f"{where}.teardown_timeout_secs"))
