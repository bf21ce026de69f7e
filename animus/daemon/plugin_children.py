"""From installed plugins to child specs for a role supervisor.

Each plugin gets only the environment it declares (``env_required``), the
safe base (PATH, HOME, …), what the operator passes in config, and the
``ANIMUS_*`` variables that tell it where its host, the bus and the control
socket are. Its cwd is pinned to the project root. A missing required
variable is logged at spawn and the plugin still starts (it decides whether
it can run without it); ``plugin info|ping|call`` refuse up front instead.
"""

from __future__ import annotations

import os
from typing import Any

from animus.daemon.config import DaemonConfig, truthy
from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.plugin_env import plugin_env_fixed, plugin_env_names
from animus.plugin_runtime.registry import Registry
from animus.state.scope import Scope

__all__ = ["plugin_children", "SUPERVISOR_OF_ROLE", "declared_sensitive"]

SUPERVISOR_OF_ROLE = {
    "provider": "providers",
    "subject": "subjects",
    "trigger": "triggers",
    "transport": "transports",
    "web-ui": "transports",
    "log-storage": "transports",
}


LOG_STORAGE_SWITCH = "ANIMUS_DAEMON_DISABLE_LOG_STORAGE_PLUGIN"


def declared_sensitive(scope: Scope) -> list[str]:
    """Every variable an installed plugin's manifest marks ``sensitive: true``."""
    return sorted({v.name for pl in Registry(scope.plugins_dir).installed() if pl.manifest is not None
                   for v in pl.manifest.env_required if v.sensitive})


def plugin_children(scope: Scope, config: DaemonConfig, role: str, sup_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    endpoints = {
        p.ENV_ENDPOINT: sup_cfg["plugin_endpoint"],
        p.ENV_BUS: sup_cfg["bus_endpoint"],
        p.ENV_CONTROL: sup_cfg["control_endpoint"],
        "ANIMUS_BUS_OUT": sup_cfg["bus_out_endpoint"],
    }
    children = []
    for plugin in Registry(scope.plugins_dir).installed():
        if plugin.manifest is None or SUPERVISOR_OF_ROLE.get(plugin.manifest.role) != sup_cfg["name"]:
            continue
        if plugin.manifest.role == "log-storage" and truthy(os.environ.get(LOG_STORAGE_SWITCH)):
            continue  # kill switch: the in-tree events.jsonl is the log storage
        missing = plugin.manifest.missing_env()
        if missing:  # warn and still spawn: the plugin decides whether it can run without them
            from animus.logs import get_logger

            get_logger().warning("plugin is missing required environment variables",
                                 plugin=plugin.name, missing=missing)
        children.append({
            "id": plugin.name,
            "role": plugin.manifest.role,
            "argv": plugin.manifest.argv(),
            # names only: the child supervisor takes the values from its own environment at
            # spawn, so no secret is ever written to state/supervisors/<role>.json
            "env_names": plugin_env_names(plugin, config.plugin_env(plugin.name)),
            "env_set": plugin_env_fixed(plugin, scope, endpoints),
            "cwd": str(scope.project_root),
            "config": {**plugin.manifest.config, **config.plugin_config(plugin.name)},
            "backoff": config.restart.to_dict(),
            "shutdown": 5.0,
        })
    return children
