"""The daemon's side of ``daemon/health``: rows for every installed plugin, from the record.

The child supervisors answer for the plugins they run. This adds, from
``plugins.yaml`` (the daemon has it loaded cheaply; the CLI should not need
to parse YAML to print health):

- the ``kinds`` a subject plugin declares, so the caller can tell which
  plugin a kind routes to;
- ``missing_env`` for a failing plugin that never answered (it may exit at
  once without its variable): that is "unconfigured", not "broken";
- a ``skipped`` row for each plugin whose supervisor a kill switch skipped;
- a ``not running`` row for each plugin no supervisor runs (installed after
  the daemon started): the CLI probes those one-shot.
"""

from __future__ import annotations

from typing import Any

from animus.daemon.plugin_children import SUPERVISOR_OF_ROLE
from animus.plugin_runtime.health_policy import NOT_RUNNING
from animus.plugin_runtime.registry import Registry

__all__ = ["complete_rows", "NOT_RUNNING"]


def _missing_env(registry: Registry, name: str) -> list[str]:
    plugin = registry.get(name)
    return plugin.manifest.missing_env() if plugin is not None and plugin.manifest is not None else []


def complete_rows(rows: list[dict[str, Any]], registry: Registry, skipped: dict[str, str]) -> list[dict[str, Any]]:
    """``rows`` (from the supervisors) plus what only the installed-plugin record knows."""
    entries = registry.entries()
    out = []
    for row in rows:
        entry = entries.get(str(row.get("plugin")))
        if entry is not None and entry.get("kinds"):
            row = {**row, "kinds": list(entry["kinds"])}
        if entry is not None and row.get("status") == "unhealthy" and not row.get("answered"):
            missing = _missing_env(registry, str(row["plugin"]))
            if missing:
                row = {**row, "missing_env": missing}
        out.append(row)
    seen = {str(r.get("plugin")) for r in rows}
    for name, entry in sorted(entries.items()):
        if name in seen:
            continue
        role = str(entry.get("role", "?"))
        supervisor = SUPERVISOR_OF_ROLE.get(role, "")
        if supervisor in skipped:
            out.append({"plugin": name, "role": role, "status": "skipped", "source": "daemon",
                        "last_error": skipped[supervisor]})
        else:
            out.append({"plugin": name, "role": role, "status": NOT_RUNNING, "source": "daemon"})
    return out
