"""What ``animus plugin list`` and ``plugin info`` show, computed where the record is at hand.

With the daemon up these run inside it (control method ``plugin/installed``),
which has the YAML parser loaded anyway, so that the CLI prints the table
without parsing YAML itself; with the daemon down the CLI runs them.
"""

from __future__ import annotations

from typing import Any

from animus.plugin_runtime.registry import InstalledPlugin

__all__ = ["plugin_rows", "plugin_detail"]


def plugin_rows(plugins: list[InstalledPlugin], live: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"plugins": rows, "warnings": lines}``: role, version, signature, live state, source of each."""
    rows = [{
        "name": p.name, "role": p.role, "version": p.entry.get("version"), "signature": p.signature,
        "source": p.entry.get("source"), "state": (live.get(p.name) or {}).get("state", "not running"),
        "kinds": p.entry.get("kinds", []), "path": p.entry.get("path"),
    } for p in plugins]
    return {"plugins": rows, "warnings": [f"{p.name}: {p.error}" for p in plugins if p.error]}


def plugin_detail(plugin: InstalledPlugin) -> dict[str, Any]:
    """Manifest, install record, command line, and the required variables missing here."""
    if plugin.manifest is None:
        return {"name": plugin.name, "error": plugin.error, "install": plugin.entry}
    return {"name": plugin.name, "manifest": plugin.manifest.to_dict(), "install": plugin.entry,
            "binary": " ".join(plugin.manifest.argv()), "signature": plugin.signature,
            "missing_env": plugin.manifest.missing_env()}
