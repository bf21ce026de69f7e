"""The first-party plugins that ship inside this animus package.

They live as ``animus/plugins/<role>/<name>/animus-plugin.yaml``. An installed
first-party plugin (source ``builtin:<name>``) always runs the manifest of the
package being run, so that upgrading animus upgrades them too.
"""

from __future__ import annotations

import functools
from pathlib import Path

from animus.errors import InvalidInput
from animus.plugin_runtime.manifest import MANIFEST_FILE, load_manifest

__all__ = ["PLUGINS_PKG", "DEFAULT_SETS", "builtin_catalog"]

PLUGINS_PKG = Path(__file__).resolve().parent.parent / "plugins"
DEFAULT_SETS = {
    "base": ("claude", "codex", "gemini", "opencode", "oai"),
    "subjects": ("default", "requirements", "linear", "sqlite", "markdown"),
    "transports": ("transport-http", "transport-graphql", "web-ui"),
    "triggers": ("cron", "file-watcher", "webhook"),
}


def builtin_catalog() -> dict[str, Path]:
    """First-party plugins that exist in this build (name -> folder)."""
    return dict(_catalog())


@functools.cache
def _catalog() -> dict[str, Path]:
    out = {}
    for manifest_path in sorted(PLUGINS_PKG.glob(f"*/*/{MANIFEST_FILE}")):
        try:
            out[load_manifest(manifest_path).name] = manifest_path.parent
        except InvalidInput:
            continue
    return out
