"""Animus's tree: which child supervisors the root runs, and what each is told.

    animus daemon (root)
     ├─ providers   supervisor ── provider plugins
     ├─ subjects    supervisor ── subject plugins
     ├─ workflows   supervisor ── workflow runner subprocesses (dynamic; the workflows service)
     ├─ triggers    supervisor ── trigger plugins
     └─ transports  supervisor ── transport plugins

Children stop in reverse order. They start at once, each after those it needs
(``START_AFTER``): the workflows service after the plugins it calls. Triggers
start with everything else: an event that comes before the workflows service
runs waits for it (``ChildSupervisor._fire``); transports need nothing. A
role with its kill switch set is skipped (and says so in ``daemon status``).
"""

from __future__ import annotations

import os
from typing import Any

from animus.daemon.config import DaemonConfig, truthy
from animus.daemon.plugin_children import plugin_children
from animus.state.scope import Scope
from animus.supervision.spec import ChildSpec, ChildType, Restart, Timeout

__all__ = ["ROLES", "AnimusTree", "WORKFLOW_SERVICE"]

# (supervisor name, plugin role, kill-switch env var)
ROLES = (
    ("providers", "provider", "ANIMUS_DAEMON_DISABLE_PROVIDER_PLUGINS"),
    ("subjects", "subject", "ANIMUS_DAEMON_DISABLE_SUBJECT_PLUGINS"),
    ("workflows", None, None),
    ("triggers", "trigger", "ANIMUS_DAEMON_DISABLE_TRIGGERS"),
    ("transports", "transport", None),
)
WORKFLOW_SERVICE = "animus.workflow.service:WorkflowService"
# they start at once, each after those it needs up: runs (recovered ones at once) call providers
# and subjects (a trigger's event waits for workflows by itself)
START_AFTER = {"workflows": ("providers", "subjects")}


class AnimusTree:
    def __init__(self, scope: Scope, config: DaemonConfig, options: dict[str, Any]) -> None:
        self.scope = scope
        self.config = config
        self.options = options
        self.roles = {name: role for name, role, _ in ROLES}

    def child_specs(self) -> tuple[list[ChildSpec], dict[str, str]]:
        specs, skipped = [], {}
        for name, role, switch in ROLES:
            if switch and truthy(os.environ.get(switch)):
                skipped[name] = f"skipped: {switch} is set"
                continue
            specs.append(ChildSpec(id=name, start={"module": "animus.supervision.child"},
                                   restart=Restart.PERMANENT,
                                   shutdown=Timeout(self.config.drain_timeout + 10 if role is None else 30.0),
                                   type=ChildType.SUPERVISOR, role=role or "workflow",
                                   backoff=self.config.restart))
        return specs, skipped

    def child_config(self, name: str, base: dict[str, Any], remote: dict[str, str]) -> dict[str, Any]:
        role = self.roles[name]
        cfg = dict(base, role=role or name)
        if role is not None:
            cfg["children"] = plugin_children(self.scope, self.config, role, cfg)
            return cfg
        cfg["service"] = WORKFLOW_SERVICE
        cfg["preload"] = ["animus.workflow.runner", "animus.workflow.agent_phase"]
        cfg["lean_zygote"] = True  # a runner per run: forked from a zygote that imported only what runners need
        cfg["strategy"] = "simple_one_for_one"
        cfg["restart"] = self.config.restart.to_dict()
        cfg["service_config"] = {
            "state_root": cfg["state_root"], "project_root": cfg["project_root"],
            "bus_endpoint": cfg["bus_endpoint"], "control_endpoint": cfg["control_endpoint"],
            "pool_size": self.config.pool_size, "interval_secs": self.config.interval_secs,
            "drain_timeout": self.config.drain_timeout, "scheduler_kinds": list(self.config.scheduler_kinds),
            "autonomous": bool(self.options.get("autonomous")), "runners": self.config.runners,
            "command_env": list(self.config.command_env),
            # endpoints only: the token and keys reach the supervisor in its environment
            "remote": remote,
            "git": dict(self.options.get("git") or {}, worktrees=self.config.raw.get("worktrees")),
        }
        return cfg

    def child_env(self, name: str, runner_env: dict[str, str]) -> dict[str, str]:
        return dict(runner_env) if self.roles.get(name) is None else {}

    def start_after(self) -> dict[str, tuple[str, ...]]:
        return dict(START_AFTER)
