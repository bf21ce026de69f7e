"""An agent profile's ``permissions``: what its CLI may do without asking, named as operators know it.

```yaml
agents:
  coder:    {tool: claude, permissions: {mode: edit, allow_tools: ["Bash(pytest:*)"]}}
  reviewer: {tool: codex,  permissions: {mode: read-only}}
```

* ``mode: edit`` (the default): edit files and run commands inside the run's
  working directory, and nothing else;
* ``mode: read-only``: read and search only (review phases);
* ``mode: full``: every tool without asking (still never a flag the CLI
  refuses as root, such as Claude's ``--dangerously-skip-permissions``).

``allow_tools`` / ``deny_tools`` are the CLI's own tool names or rules
(Claude ``Bash(npm test:*)``, Gemini ``run_shell_command``, opencode ``bash``),
passed through by each provider; ``docs/providers.md`` has the mapping per CLI.
The agent is never asked interactively: a tool use outside these bounds is
denied, and the denial is reported (``agent_permission_denied``).

Pure: the loader calls ``parse_permissions`` on the YAML value, the provider
plugins on the ``agent/run`` param, so both refuse the same things the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from animus.errors import InvalidInput

__all__ = ["MODES", "AgentPermissions", "parse_permissions"]

MODES = ("read-only", "edit", "full")
_KEYS = ("mode", "allow_tools", "deny_tools")
_TOOL = re.compile(r"^[^\s\x00-\x1f][^\x00-\x1f]{0,199}$")  # a name or a rule such as Bash(git diff:*)


@dataclass(frozen=True)
class AgentPermissions:
    mode: str = "edit"
    allow_tools: tuple[str, ...] = ()
    deny_tools: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"permissions.mode must be one of {', '.join(MODES)}, got {self.mode!r}",
                               fix="use mode: edit (the default), read-only or full")

    def to_plain(self) -> dict[str, Any]:
        return {"mode": self.mode, "allow_tools": list(self.allow_tools), "deny_tools": list(self.deny_tools)}


def _tools(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and _TOOL.match(v) for v in value):
        raise InvalidInput(f"{where}.{key} must be a list of tool names, got {value!r}",
                           fix=f'write {key}: ["Bash(git diff:*)", "WebFetch"] (the CLI\'s own tool names)')
    return tuple(value)


def parse_permissions(raw: Any, where: str = "permissions") -> AgentPermissions:
    """The checked block; ``None`` means the defaults. Raises ``InvalidInput`` naming the bad key."""
    if raw is None:
        return AgentPermissions()
    if isinstance(raw, str):  # the short form: permissions: read-only
        raw = {"mode": raw}
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be a mapping, got {type(raw).__name__}",
                           fix="write permissions: {mode: edit} (or read-only, full)")
    unknown = sorted(str(k) for k in raw if k not in _KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key {unknown[0]!r}", fix="known keys: " + ", ".join(_KEYS))
    mode = raw.get("mode", "edit")
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidInput(f"{where}.mode must be one of {', '.join(MODES)}, got {mode!r}",
                           fix="use mode: edit (the default), read-only or full")
    allow, deny = _tools(raw, "allow_tools", where), _tools(raw, "deny_tools", where)
    both = sorted(set(allow) & set(deny))
    if both:
        raise InvalidInput(f"{where}: {both[0]!r} is in both allow_tools and deny_tools",
                           fix="keep it in one of the two lists")
    return AgentPermissions(mode, allow, deny)
