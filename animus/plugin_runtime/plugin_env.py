"""The environment a plugin starts with: what it declared, the safe base, what the operator passes.

Each plugin gets only the variables its manifest declares (``env_required``),
the safe base (PATH, HOME, …) and the names the operator passes through
(``plugins.<name>.env`` in ``.animus/config.yaml``), plus the ``ANIMUS_*``
variables that tell it where its host, the bus and the control socket are.
The same rules hold under the daemon and in one-shot sessions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.registry import InstalledPlugin
from animus.redact import ENV_SENSITIVE
from animus.state.scope import Scope

__all__ = ["plugin_env", "plugin_env_fixed", "plugin_env_names"]


def plugin_env_names(plugin: InstalledPlugin, passthrough: Sequence[str]) -> list[str]:
    """Names a plugin gets from the environment: declared, safe base, operator passthrough."""
    assert plugin.manifest is not None
    names = set(plugin.manifest.plugin_env(dict(os.environ), list(passthrough)))
    return sorted(names | {n for n in ("ANIMUS_HOST_SILENCE_SECS", "PYTHONPATH", ENV_SENSITIVE) if n in os.environ})


def plugin_env_fixed(plugin: InstalledPlugin, scope: Scope, endpoints: dict[str, str]) -> dict[str, str]:
    """What the host tells a plugin: its id, the state and project roots, the endpoints (no secrets)."""
    return {p.ENV_ID: plugin.name, p.ENV_STATE: str(scope.root), p.ENV_PROJECT: str(scope.project_root),
            "ANIMUS_HOME": str(scope.home), **endpoints}


def plugin_env(plugin: InstalledPlugin, scope: Scope, passthrough: Sequence[str],
               endpoints: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in plugin_env_names(plugin, passthrough) if k in os.environ}
    return env | plugin_env_fixed(plugin, scope, endpoints)
