"""``animus plugin update``: reinstall plugins whose source has changed.

Built-ins update to the version in this animus build; folders and tarballs
are re-read from their path; GitHub releases are downloaded again (``--tag``
pins a release). ``--dry-run`` says what would change and changes nothing.
Each plugin is re-checked under the signature policy it was installed with
(or a stricter one given on the command line), never a weaker one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from animus.errors import AnimusError, NotFound
from animus.plugin_runtime.install import builtin_catalog, dir_sha256, file_sha256, install
from animus.plugin_runtime.manifest import load_manifest
from animus.plugin_runtime.registry import Registry
from animus.state.scope import Scope

__all__ = ["update_plugins"]


def _plan(entry: dict[str, Any], tag: str | None) -> tuple[str, str, str]:
    """(action, detail, source to install from)."""
    source = str(entry.get("source", ""))
    kind, _, where = source.partition(":")
    if kind == "builtin":
        folder = builtin_catalog().get(where)
        if folder is None:
            return "failed", "no longer shipped in this animus build", ""
        new = load_manifest(folder).version
        if new == entry.get("version"):
            return "up-to-date", f"{new}", source
        return "update", f"{entry.get('version')} -> {new}", source
    if kind == "path":
        if not Path(where).is_dir():
            return "failed", f"source folder {where} is gone", ""
        changed = dir_sha256(Path(where)) != entry.get("sha256")
        return ("update" if changed else "up-to-date"), where, where
    if kind == "tarball":
        if not Path(where).is_file():
            return "failed", f"source tarball {where} is gone", ""
        changed = file_sha256(Path(where)) != entry.get("sha256")
        return ("update" if changed else "up-to-date"), where, where
    if kind == "github":
        repo = where.split("@", 1)[0]
        target = f"{repo}@{tag}" if tag else repo
        return "update", f"download {target}", target
    return "failed", f"unknown source {source!r}", ""


_STRICTNESS = ("disabled", "warn", "strict")


def effective_policy(entry: dict[str, Any], requested: str | None) -> str:
    """The policy an update runs under: the install's own, or a stricter one asked for.

    An update never weakens the check a plugin was installed under: a plugin
    installed ``strict`` is not re-downloaded under the default ``warn``.
    """
    recorded = str((entry.get("signature") or {}).get("policy") or "")
    known = [p for p in (recorded, requested) if p in _STRICTNESS]
    if not known:
        return requested or "warn"  # unknown names reach install(), which explains them
    return max(known, key=_STRICTNESS.index)


def update_plugins(scope: Scope, name: str | None, tag: str | None, dry_run: bool, policy: str | None,
                   progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    entries = Registry(scope.plugins_dir).entries()
    if name is not None and name not in entries:
        raise NotFound(f"plugin {name!r} is not installed", fix="animus plugin list")
    report = []
    for plugin, entry in sorted(entries.items()):
        if name is not None and plugin != name:
            continue
        action, detail, source = _plan(entry, tag)
        if action == "update" and not dry_run:
            try:
                result = install(scope, source, effective_policy(entry, policy), force=True, progress=progress)
                detail = f"{entry.get('version')} -> {result.get('version')}"
                action = "updated"
            except AnimusError as exc:
                action, detail = "failed", exc.one_line()
        elif action == "update":
            action = "would-update"
        report.append({"name": plugin, "action": action, "detail": detail})
    return report
