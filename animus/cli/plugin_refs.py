"""Which installed plugins something points at: the inputs of ``daemon health``'s verdict.

With the daemon up, the workflow config comes from the compiled snapshot it runs
(``state/workflow-config.v1.json``), read here as plain JSON with its schema
and content hash checked, because the typed reader drags in the YAML loader
and the whole workflow model (~50 ms) for what is a lookup of a few fields.
With the daemon down, the project's YAML is loaded as the next start will
load it (the snapshot may be stale); each falls back to the other, and if
both fail every plugin counts as used (we cannot prove otherwise).
The daemon config (``.animus/config.yaml``) is read only when it exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from animus.plugin_runtime.health_policy import references
from animus.state.digest import sha256_hex
from animus.state.scope import Scope

TYPE_CHECKING = False  # typing costs a CLI call ~2.5 ms to import; annotations need it only for mypy
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Sources", "plugin_references", "compiled_workflow", "COMPILED_FILE", "COMPILED_SCHEMA"]

# the names animus.workflow.config.compiled writes (a test checks they agree)
COMPILED_FILE = "workflow-config.v1.json"
COMPILED_SCHEMA = "animus.workflow.compiled.v1"
CONFIG_FILE = ".animus/config.yaml"


def compiled_workflow(scope: Scope) -> dict[str, Any] | None:
    """The compiled workflow config as plain data, or None when absent or not intact."""
    try:
        data = json.loads((scope.state_dir / COMPILED_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema") != COMPILED_SCHEMA:
        return None
    body = {k: v for k, v in data.items() if k not in ("schema", "hash")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if data.get("hash") != "sha256:" + sha256_hex(canonical):
        return None
    return body


def _from_yaml(scope: Scope) -> dict[str, Any] | None:
    import os

    from animus.errors import AnimusError
    from animus.workflow.config import load_workflow_config
    from animus.workflow.model import to_plain

    try:
        plain: dict[str, Any] = to_plain(load_workflow_config(scope.project_root, dict(os.environ)))
    except AnimusError:
        return None
    return plain


def _workflow(scope: Scope, daemon_up: bool) -> dict[str, Any] | None:
    """What the running daemon uses (its snapshot), or what the next start will use (the YAML)."""
    first, second = (compiled_workflow, _from_yaml) if daemon_up else (_from_yaml, compiled_workflow)
    found = first(scope)
    return found if found is not None else second(scope)


def _daemon_config(scope: Scope) -> tuple[list[str], list[str]]:
    """(plugins named in the config, subject kinds it routes)."""
    if not (scope.project_root / CONFIG_FILE).exists():
        return [], ["task"]
    from animus.daemon.config import load_daemon_config
    from animus.errors import AnimusError

    try:
        config = load_daemon_config(scope.project_root)
    except AnimusError:
        return [], ["task"]  # the daemon refuses to start on it; health is not the place to say so
    kinds = [*config.scheduler_kinds, "task"]
    if config.raw.get("default_subject_kind"):
        kinds.insert(0, str(config.raw["default_subject_kind"]))
    return sorted(config.plugins), kinds


class Sources:
    """What points at plugins: the workflow config and the daemon config, read once (before the
    rows they are matched against, while the daemon gathers them)."""

    __slots__ = ("daemon_up", "workflow", "config_plugins", "kinds")

    def __init__(self, scope: Scope, daemon_up: bool) -> None:
        self.daemon_up = daemon_up
        self.config_plugins, self.kinds = _daemon_config(scope)
        self.workflow = _workflow(scope, daemon_up)


def plugin_references(scope: Scope, rows: Sequence[Mapping[str, Any]], daemon_up: bool,
                      sources: Sources | None = None) -> dict[str, list[str]]:
    """Plugin name -> what uses it, for the plugins in ``rows`` (which carry role and kinds)."""
    if sources is None or sources.daemon_up != daemon_up:
        sources = Sources(scope, daemon_up)
    plugin_kinds = {str(r["plugin"]): list(r.get("kinds") or []) for r in rows
                    if r.get("role") == "subject" and r.get("kinds")}
    roles = {str(r["plugin"]): str(r.get("role")) for r in rows}
    return references(sources.workflow, sources.config_plugins, sources.kinds, plugin_kinds, roles)
