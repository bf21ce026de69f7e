"""What a run on a Ray node is handed, and when: the spec with the Ray task, the secrets later.

The spec is the Ray task's argument, readable by anyone who can submit work
to the cluster (docs/security.md): it carries the runners' token and CURVE
client keys, the compiled workflow config (secret variables in it are
references, not values), and where the node gets the code. The values of the
secrets that config refers to go only in the daemon's reply to the run's
``started`` report, over the encrypted control channel.

Where a node works is decided with the spec's ``branch`` (the task's
``branch`` field, else ``runners.ray.branch``, else the project's current
branch) and, at ``started``, by :func:`worktree_choice`.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from animus import __version__
from animus.bus.curve import ClientKeys
from animus.workflow.config import COMPILED_FILE
from animus.workflow.remote.ray_config import RayRunnersConfig
from animus.workflow.settings import WorkflowSettings
from animus.workflow.store import WorkflowRow

__all__ = ["run_secrets", "run_spec", "worktree_choice"]


def run_spec(wf: WorkflowRow, run: str, settings: WorkflowSettings, cfg: RayRunnersConfig,
             remote: dict[str, str], curve: ClientKeys | None) -> dict[str, Any]:
    state_root = settings.state_root
    subject = wf.get("subject") or {}
    branch = (subject.get("branch") or (subject.get("custom") or {}).get("branch") or cfg.branch
              or git_out(settings.project_root, "rev-parse", "--abbrev-ref", "HEAD"))
    return {
        "wf_id": wf["id"], "run": run, "version": __version__, "scope": state_root.name,
        "bus_endpoint": remote["bus_endpoint"], "control_endpoint": remote["control_endpoint"],
        "token": remote["token"], "curve": curve.to_dict() if curve else None,
        "heartbeat_secs": cfg.heartbeat_secs,
        "heartbeat_timeout_secs": cfg.heartbeat_timeout_secs, "work_dir": cfg.work_dir,
        "repository": cfg.repository or git_out(settings.project_root, "remote", "get-url", "origin")
        or str(settings.project_root),
        "branch": branch or "HEAD", "config_name": COMPILED_FILE,
        "config": (state_root / "state" / COMPILED_FILE).read_bytes(),
        "daemon_state_root": str(state_root), "daemon_project_root": str(settings.project_root),
        "command_env": list(settings.command_env),
    }


def run_secrets(state_root: Path) -> dict[str, str]:
    """Values of the secret variables the compiled config refers to (animus.redact)."""
    from animus.redact import references

    try:
        text = (state_root / "state" / COMPILED_FILE).read_text()
    except OSError:
        return {}
    return {name: os.environ[name] for name in sorted(references(text)) if name in os.environ}


def worktree_choice(previous_node: str | None, node: str) -> str:
    """``reuse`` the run's worktree on its node only when the workflow's previous run was on that
    same node; else ``fresh``. A worktree a node kept from an earlier run, before the workflow
    went on elsewhere, lacks what was pushed since: it is made again from the task's branch."""
    return "reuse" if previous_node == node else "fresh"


def git_out(cwd: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
