"""What a health row means: Healthy, Unconfigured, Unhealthy — and whether it fails the check.

A fresh install carries plugins nobody uses yet (``linear`` without a key,
``sqlite`` without a path, provider CLIs not on PATH). A health check that
is red for those is red forever, and operators learn to ignore it. So:

- a plugin that *runs and answers* ``health/check`` unhealthy (or is refused
  up front for a missing required env var) and that nothing references is
  ``unconfigured``: shown with its fix, not a failure;
- the same plugin once referenced — an agent's ``tool``/``fallback_provider``,
  a kind the scheduler or the config routes to it, a trigger of its type, a
  ``plugins.<name>`` block in the config, or a transport (which serves
  whenever it is installed) — stays ``unhealthy`` and fails the check;
- a plugin that crashes, hangs, speaks garbage or was disabled is a fault of
  the plugin, never "unconfigured";
- ``strict`` fails on any row that is not ``healthy``.

Pure functions over plain data (rows as ``daemon/health`` returns them, the
compiled workflow config as a dict), so the CLI and tests share them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from animus.errors import AnimusError
from animus.plugin_runtime.subject_router import SubjectRouter

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["references", "classify", "fix_of", "ALWAYS_REFERENCED_ROLES", "NOT_RUNNING"]

NOT_RUNNING = "not running"  # the daemon's row for an installed plugin no supervisor runs: probe it
# roles that serve from the moment they are installed: nothing else needs to point at them
ALWAYS_REFERENCED_ROLES = ("transport", "web-ui", "log-storage")
_FIX = re.compile(r"\((?:fix|install): ([^()]*(?:\([^()]*\)[^()]*)*)\)")


def _trigger_plugin(kind: str) -> str:
    return kind.replace("_", "-")  # trigger type file_watcher is served by the file-watcher plugin


def references(workflow: Mapping[str, Any] | None, config_plugins: Iterable[str], kinds: Iterable[str],
               plugin_kinds: Mapping[str, list[str]], plugin_roles: Mapping[str, str]) -> dict[str, list[str]]:
    """Plugin name -> why it is in use. ``workflow`` None means "unknown": everything is in use."""
    refs: dict[str, list[str]] = {}

    def add(plugin: str | None, why: str) -> None:
        if plugin:
            refs.setdefault(str(plugin), []).append(why)

    if workflow is None:
        for name in plugin_roles:
            add(name, "the workflow config could not be read, so every plugin counts as used")
        return refs
    for agent_id, agent in sorted((workflow.get("agents") or {}).items()):
        add(agent.get("provider"), f"agent {agent_id} (tool)")
        add(agent.get("fallback_provider"), f"agent {agent_id} (fallback_provider)")
    for trigger in workflow.get("triggers") or []:
        if trigger.get("enabled", True):
            add(_trigger_plugin(str(trigger.get("type"))), f"trigger {trigger.get('id')}")
    for schedule in workflow.get("schedules") or []:
        if schedule.get("enabled", True):
            add("cron", f"schedule {schedule.get('id')}")
    for name in config_plugins:
        add(name, f"plugins.{name} in .animus/config.yaml")
    try:
        router = SubjectRouter.build(plugin_kinds)
    except AnimusError:
        router = None  # two plugins claim one kind: the daemon reports that itself
    for kind in dict.fromkeys(kinds):
        try:
            add(router.route(kind) if router else None, f"kind {kind} routes here")
        except AnimusError:
            continue
    for name, role in plugin_roles.items():
        if role in ALWAYS_REFERENCED_ROLES:
            add(name, f"a {role} serves whenever it is installed")
    return refs


def fix_of(row: Mapping[str, Any]) -> str:
    """The command or step that fixes an unconfigured plugin, from its own last_error."""
    text = str(row.get("last_error") or "")
    found = _FIX.search(text)
    name = row.get("plugin")
    also = f"; or, if you do not use it, animus plugin uninstall --name {name}"
    if found:
        return found.group(1).strip() + also
    if row.get("missing_env"):
        return f"export {row['missing_env'][0]}=... before the daemon starts" + also
    return (text or "configure it") + also


def _configurable(row: Mapping[str, Any]) -> bool:
    """The plugin itself said it cannot work yet (it answered), or it lacks a required variable."""
    return bool(row.get("answered") or row.get("missing_env"))


def classify(rows: list[dict[str, Any]], refs: Mapping[str, list[str]],
             strict: bool = False) -> tuple[list[dict[str, Any]], bool]:
    """Rows with their final status (and ``fix``/``referenced_by``), and whether the check passes."""
    out = []
    ok = True
    for row in rows:
        row = dict(row)
        used = refs.get(str(row.get("plugin")))
        if row.get("status") == "unhealthy":
            if used:
                row["referenced_by"] = list(used)
            elif _configurable(row):
                row["status"] = "unconfigured"
                row["fix"] = fix_of(row)
        status = row.get("status")
        if status == "unhealthy" or (strict and status != "healthy"):
            ok = False
        out.append(row)
    return out, ok
