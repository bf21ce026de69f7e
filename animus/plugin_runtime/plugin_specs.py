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

from animus.config import DaemonConfig, truthy
from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.registry import InstalledPlugin, Registry
from animus.state.scope import Scope

__all__ = ["plugin_children", "SUPERVISOR_OF_ROLE", "plugin_env"]

SUPERVISOR_OF_ROLE = {
    "provider": "providers",
    "subject": "subjects",
    "trigger": "triggers",
    "transport": "transports",
    "web-ui": "transports",
    "log-storage": "transports",
}


LOG_STORAGE_SWITCH = "ANIMUS_DAEMON_DISABLE_LOG_STORAGE_PLUGIN"


def plugin_env(plugin: InstalledPlugin, scope: Scope, config: DaemonConfig,
               endpoints: dict[str, str]) -> dict[str, str]:
    assert plugin.manifest is not None
    env = plugin.manifest.plugin_env(dict(os.environ), config.plugin_env(plugin.name))
    env.update({
        p.ENV_ID: plugin.name,
        p.ENV_STATE: str(scope.root),
        p.ENV_PROJECT: str(scope.project_root),
        "ANIMUS_HOME": str(scope.home),
        **endpoints,
    })
    for name in ("ANIMUS_HOST_SILENCE_SECS", "PYTHONPATH"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


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
            "env": plugin_env(plugin, scope, config, endpoints),
            "cwd": str(scope.project_root),
            "config": {**plugin.manifest.config, **config.plugin_config(plugin.name)},
            "backoff": config.restart.to_dict(),
            "shutdown": 5.0,
        })
    return children
