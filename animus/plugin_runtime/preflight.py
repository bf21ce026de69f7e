"""Daemon preflight: is every required role covered by an installed plugin?

At least one provider and one subject backend are required; transports and
the web UI are informational. Exit codes: 0 satisfied, 2 a role missing,
1 discovery failed. JSON schema ``animus.daemon.preflight.v1``.
"""

from __future__ import annotations

from typing import Any

from animus.plugin_runtime.registry import Registry
from animus.state.scope import Scope

__all__ = ["preflight", "render_preflight", "PREFLIGHT_SCHEMA", "REQUIRED", "ROWS"]

PREFLIGHT_SCHEMA = "animus.daemon.preflight.v1"
REQUIRED = ("provider", "subject")
ROWS = (("provider", ("provider",)), ("subject", ("subject",)), ("transport+ui", ("transport", "web-ui")))
FIX = {"provider": "animus plugin install-defaults",
       "subject": "animus plugin install-defaults --include-subjects"}


def _default_order(name: str) -> tuple[int, str]:
    """The first-party set in its catalog order (as the runbook lists it), then the rest by name."""
    from animus.plugin_runtime.catalog import DEFAULT_SETS

    order = [n for names in DEFAULT_SETS.values() for n in names]
    return (order.index(name), "") if name in order else (len(order), name)


def preflight(scope: Scope) -> dict[str, Any]:
    installed = Registry(scope.plugins_dir).installed()
    satisfied: dict[str, list[str]] = {}
    warnings = [f"{p.name}: {p.error}" for p in installed if p.error]
    for row, roles in ROWS:
        names = [p.name for p in installed if p.manifest and p.manifest.role in roles]
        satisfied[row] = sorted(names, key=_default_order)
    missing = [role for role in REQUIRED if not satisfied[role]]
    fixes = []
    if "provider" in missing:
        fixes.append(FIX["provider"] + (" --include-subjects" if "subject" in missing else ""))
    elif "subject" in missing:
        fixes.append(FIX["subject"])
    return {
        "ok": not missing,
        "satisfied": satisfied,
        "missing": missing,
        "auto_installed": [],
        "fix_message": fixes[0] if fixes else None,
        "warnings": warnings,
    }


def render_preflight(report: dict[str, Any]) -> str:
    def row(name: str) -> str:
        names = report["satisfied"][name]
        need = " (need at least one)" if name in REQUIRED and not names else ""
        listing = f" ({', '.join(names)})" if names else ""
        return f"{name}: {len(names)} installed{listing}{need}"

    if report["ok"]:
        lines = ["Daemon preflight OK", *(row(n) for n, _ in ROWS)]
        if report["auto_installed"]:
            lines.append(f"auto-installed: {', '.join(report['auto_installed'])}")
        return "\n".join(lines)
    lines = ["error: daemon preflight failed"]
    lines += [f"  {row(n)}" for n in REQUIRED if n in report["missing"]]
    lines.append(f"  fix: {report['fix_message']}")
    return "\n".join(lines)
