"""Reinstall recorded plugins whose files are missing (after a restore, or a lost folder).

``plugins.yaml`` says what was installed and from where; when a plugin's
folder or manifest is gone, ``daemon start --auto-install`` installs it again
from that source: a first-party one from this animus build, a folder or a
tarball from its path, a GitHub release by downloading it again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from animus.errors import AnimusError
from animus.plugin_runtime.install import install
from animus.plugin_runtime.registry import Registry
from animus.state.scope import Scope

__all__ = ["missing_plugins", "reinstall_missing"]


def missing_plugins(scope: Scope) -> dict[str, str]:
    """Recorded plugins whose installed copy is missing or unreadable: name -> source."""
    out = {}
    for plugin in Registry(scope.plugins_dir).installed():
        folder = Path(str(plugin.entry.get("path", "")))
        if plugin.manifest is None or not folder.is_dir():
            out[plugin.name] = str(plugin.entry.get("source", ""))
    return out


def _install_source(recorded: str) -> str:
    kind, _, where = recorded.partition(":")
    return recorded if kind == "builtin" else where


def reinstall_missing(scope: Scope, progress: Callable[[str], None] | None = None) -> tuple[list[str], list[str]]:
    """Reinstall each missing plugin from its recorded source: (reinstalled, failures as lines)."""
    done, failed = [], []
    for name, source in sorted(missing_plugins(scope).items()):
        try:
            install(scope, _install_source(source), force=True, progress=progress)
            done.append(name)
        except AnimusError as exc:
            failed.append(f"{name}: {exc.one_line()}")
    return done, failed
