"""The project's git set-up for runs: the ``worktrees:`` block and the daemon's delivery flags.

Both are read once by the daemon (``.animus/config.yaml`` and ``daemon start``
flags), handed to the workflows service in its config, and from there to each
runner in one environment variable, ``ANIMUS_GIT_SETTINGS`` (JSON), so a run
uses the settings its daemon started with.

The delivery flags are tri-state: not given, the workflow's
``post_success.merge`` decides; given, they override it for every run of the
daemon (``--auto-merge`` / ``--no-auto-merge`` …). ``--auto-merge`` or
``--auto-pr`` give a workflow with no ``post_success.merge`` block the block's
defaults (strategy merge into ``main``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animus.errors import InvalidInput
from animus.git import RepoLock, Worktrees
from animus.git.spec import MergeSpec, PullRequestSpec, WorktreeSetup, parse_worktree_setup

__all__ = ["ENV_GIT", "DeliveryFlags", "GitSettings", "effective_merge", "project_worktrees"]

ENV_GIT = "ANIMUS_GIT_SETTINGS"
_FLAGS = ("auto_merge", "auto_pr", "auto_commit_before_merge", "auto_prune_worktrees_after_merge")


@dataclass(frozen=True)
class DeliveryFlags:
    """``daemon start --auto-merge …``; None: not given, the workflow's YAML decides."""

    auto_merge: bool | None = None
    auto_pr: bool | None = None
    auto_commit_before_merge: bool | None = None  # default: on whenever a merge block applies
    auto_prune_worktrees_after_merge: bool | None = None  # overrides cleanup_worktree

    @classmethod
    def from_plain(cls, raw: Mapping[str, Any] | None) -> DeliveryFlags:
        raw = raw or {}
        bad = sorted(k for k in raw if k not in _FLAGS or raw[k] not in (None, True, False))
        if bad:
            raise InvalidInput(f"delivery flag {bad[0]}={raw[bad[0]]!r} is not one of {', '.join(_FLAGS)} "
                               "set to true, false or null", fix="restart the daemon with valid flags")
        return cls(**{k: raw.get(k) for k in _FLAGS})


@dataclass(frozen=True)
class GitSettings:
    setup: WorktreeSetup = field(default_factory=WorktreeSetup)
    flags: DeliveryFlags = field(default_factory=DeliveryFlags)
    startup_cleanup: bool = True

    @classmethod
    def from_plain(cls, raw: Mapping[str, Any] | None) -> GitSettings:
        raw = raw or {}
        return cls(setup=parse_worktree_setup(raw.get("worktrees")), flags=DeliveryFlags.from_plain(raw.get("flags")),
                   startup_cleanup=raw.get("startup_cleanup") is not False)

    def to_plain(self) -> dict[str, Any]:
        setup = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.setup).items()}
        return {"worktrees": setup, "flags": dataclasses.asdict(self.flags), "startup_cleanup": self.startup_cleanup}

    def to_env(self) -> str:
        return json.dumps(self.to_plain())

    @classmethod
    def from_env(cls, text: str | None) -> GitSettings:
        """The settings in ``text``, parsed once per text: the zygote's warm-up parses a runner's,
        so the next runner it forks finds them parsed (~0.35 ms of its start). Frozen: safe to share."""
        global _LAST
        if not text:
            return cls()
        last = _LAST  # one read: another thread may replace it meanwhile
        if last is None or last[0] != text:
            last = _LAST = (text, cls.from_plain(json.loads(text)))
        return last[1]


_LAST: tuple[str, GitSettings] | None = None  # the last text from_env parsed, and what it gave


def effective_merge(merge: MergeSpec | None, flags: DeliveryFlags) -> MergeSpec | None:
    """The workflow's ``post_success.merge`` with the daemon's flags applied (None: no delivery)."""
    if merge is None and not (flags.auto_merge or flags.auto_pr):
        return None
    spec = merge or MergeSpec()
    if flags.auto_merge is not None:
        spec = dataclasses.replace(spec, auto_merge=flags.auto_merge)
    if flags.auto_pr is not None:
        spec = dataclasses.replace(spec, create_pr=(spec.create_pr or PullRequestSpec()) if flags.auto_pr else None)
    if flags.auto_prune_worktrees_after_merge is not None:
        spec = dataclasses.replace(spec, cleanup_worktree=flags.auto_prune_worktrees_after_merge)
    return spec


def project_worktrees(project_root: Path, state_root: Path) -> Worktrees:
    """The managed worktrees of the scope: ``<state root>/worktrees``, locked by ``<state root>/git.lock``.

    The lock is a file of its own in the state root, not in ``run/``: that
    directory is emptied at every daemon start and stop."""
    return Worktrees(project_root=project_root, root=state_root / "worktrees", lock=RepoLock(state_root / "git.lock"))
