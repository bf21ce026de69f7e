"""Which subject plugin serves a kind (exact kind beats a glob; longest glob wins).

The kinds come from the installed manifests; duplicate claims fail with an
error naming both plugins.
"""

from __future__ import annotations

from animus.errors import NotFound, Unavailable
from animus.plugin_runtime.registry import Registry
from animus.plugin_runtime.subject_router import SubjectRouter
from animus.state.scope import Scope

__all__ = ["route_kind", "kinds_map"]


def kinds_map(scope: Scope) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for plugin in Registry(scope.plugins_dir).installed():
        if plugin.manifest is not None and plugin.manifest.role == "subject":
            out[plugin.name] = list(plugin.manifest.kinds)
    return out


def route_kind(scope: Scope, kind: str, disabled_reason: str | None = None) -> str:
    if disabled_reason:
        raise NotFound(f"subject plugins are disabled ({disabled_reason})",
                       fix="unset ANIMUS_DAEMON_DISABLE_SUBJECT_PLUGINS and restart the daemon")
    backends = kinds_map(scope)
    if not backends:
        raise Unavailable("no subject backend is installed",
                          fix="animus plugin install-defaults --include-subjects")
    return SubjectRouter.build(backends).route(kind)
