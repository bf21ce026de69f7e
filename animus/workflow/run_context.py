"""What a phase may use of the run it belongs to.

The runner builds one ``RunContext`` per run and hands it to each phase kind
(``command_phase``, ``agent_phase``): the run's identity, where it works,
how it reports, and ``InFlight``, the one thing a phase writes back: what it
has running, so that a cancel can stop it. Phases never see the runner.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animus.process.groups import stop_group
from animus.workflow.model import WorkflowConfig

__all__ = ["InFlight", "RunContext"]


@dataclass
class InFlight:
    """A phase's running command or agent call (at most one at a time)."""

    child: subprocess.Popen[bytes] | None = None
    agent_key: str | None = None
    agent_provider: str | None = None

    def kill_child(self) -> None:
        child = self.child
        if child is not None and child.returncode is None:  # not reaped: its group id is still its own
            stop_group(child, 0)


@dataclass(frozen=True)
class RunContext:
    wf_id: str
    run_id: str
    config: WorkflowConfig
    project_root: Path  # the operator's repository (as this runner's host sees it)
    task_root: Path  # where the run works: its worktree, or the project root
    agent_cwd: Path  # the task root as the daemon's host sees it (agents run in its provider plugins)
    run_dir: Path  # runs/<id>/ here (command logs)
    daemon_run_dir: Path  # runs/<id>/ on the daemon's host (session files recovery reads)
    remote: bool  # a runner on a Ray node: the daemon's registry is not readable here
    publish: Callable[..., None]
    control: Callable[[], Any]  # the daemon's control client, connected on first use
    in_flight: InFlight = field(default_factory=InFlight)
