"""Names Animus gives to git things: run branches and worktree directories.

A run's branch is ``animus/<task-id>`` (``animus/<workflow-id>`` for an ad-hoc
run with no task). Task ids come from subject backends (``TASK-12``,
``linear:ENG-7``, ``gh#45``), so they are sanitised into one valid ref-name
component (``git check-ref-format`` rules): characters other than letters,
digits, ``.``, ``_`` and ``-`` become ``-``, runs of ``-`` and ``.`` collapse,
and a component may not start with ``.`` or ``-`` nor end with ``.`` or
``.lock``. A worktree directory is named by the workflow id, which must
already be one safe path component (ids Animus makes always are).
"""

from __future__ import annotations

import re

from animus.errors import InvalidInput

__all__ = [
    "BRANCH_PREFIX",
    "branch_component",
    "check_workflow_id",
    "run_branch",
    "suffixed",
    "valid_branch_name",
]

BRANCH_PREFIX = "animus/"
_MAX = 80  # long enough for any task id, short enough for a readable ref
_BAD_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def branch_component(text: str) -> str:
    """``text`` as one valid ref-name component ("run" when nothing is left)."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    out = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", out))
    out = out[:_MAX].strip(".-")
    while out.endswith(".lock"):
        out = out[: -len(".lock")].rstrip(".-")
    return out or "run"


def run_branch(task_id: str | None, workflow_id: str) -> str:
    """The branch a run starts on, before any ``-2`` suffix (see :func:`suffixed`)."""
    return BRANCH_PREFIX + branch_component(task_id or workflow_id)


def suffixed(branch: str, n: int) -> str:
    """The ``n``-th name for a branch (1 is the name itself, then ``-2``, ``-3`` …)."""
    return branch if n <= 1 else f"{branch}-{n}"


def valid_branch_name(name: str) -> bool:
    """What ``git check-ref-format --branch`` accepts, without running git."""
    if not name or name == "@" or name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return False
    if _BAD_REF.search(name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))


def check_workflow_id(workflow_id: str) -> str:
    """A workflow id names a directory: it must be one plain path component."""
    if not _SAFE_ID.fullmatch(workflow_id):
        raise InvalidInput(f"workflow id {workflow_id!r} cannot name a worktree directory",
                           fix="use letters, digits, '.', '_' and '-' only, starting with a letter or digit")
    return workflow_id
