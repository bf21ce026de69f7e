"""Each agent CLI's own form of a run's MCP servers (after ``mcp_servers.bind``).

Pure functions, one per CLI, checked against the pinned CLIs' own schemas
(docs/mcp.md has the shapes):

- Claude Code: a JSON file for ``--mcp-config`` (``{"mcpServers": {name:
  {type: stdio, command, args, env} | {type: http, url, headers}}}``), always
  with ``--strict-mcp-config`` so the user's own servers never join a run;
  and ``--allowedTools`` rules (``mcp__<name>`` or ``mcp__<name>__<tool>``):
  in ``-p`` nobody approves a tool, so an MCP tool not allowed is denied —
  the rules are also how ``tools`` narrows a server;
- Codex: ``[mcp_servers.<name>]`` tables for its ``config.toml`` (``command``,
  ``args``, ``env``; ``url``, ``http_headers``; ``enabled_tools``; ``required``,
  ``default_tools_approval_mode = "approve"``), or all of them as one ``-c`` override. Codex
  starts a stdio server with a minimal environment plus ``env``, which is why
  ``bind`` puts ``ANIMUS_HOME`` into the animus server's ``env``;
- Gemini CLI: ``settings.json`` ``mcpServers`` (``command``, ``args``,
  ``env``; ``httpUrl``, ``headers``; ``includeTools``);
- opencode: its config's ``mcp`` (``{type: local, command: [cmd, *args],
  environment, enabled}`` | ``{type: remote, url, headers, enabled}``), and
  ``tools`` entries (``<name>_*: false`` then ``<name>_<tool>: true``; opencode
  turns them into permission rules, the last match winning).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from animus.errors import InvalidInput
from animus.workflow.mcp_servers import McpServer, Transport

__all__ = ["ClaudeMcp", "claude_mcp", "codex_mcp_override", "codex_mcp_toml", "gemini_mcp_settings", "opencode_mcp_config"]


def _bound(servers: Sequence[McpServer]) -> Sequence[McpServer]:
    for server in servers:
        if server.transport is Transport.STDIO and not server.command:
            raise InvalidInput(f"MCP server {server.name!r} is not bound to a run",
                               fix="call animus.workflow.mcp_servers.bind(servers, run) first")
    return servers


@dataclass(frozen=True)
class ClaudeMcp:
    config: dict[str, Any]  # the --mcp-config file's JSON
    allowed_tools: tuple[str, ...]  # for --allowedTools, beside the profile's own rules

    def argv(self, config_path: str) -> list[str]:
        return ["--strict-mcp-config", "--mcp-config", config_path]


def claude_mcp(servers: Sequence[McpServer]) -> ClaudeMcp:
    entries: dict[str, Any] = {}
    rules: list[str] = []
    for s in _bound(servers):
        if s.transport is Transport.HTTP:
            entries[s.name] = {"type": "http", "url": s.url, **({"headers": dict(s.headers)} if s.headers else {})}
        else:
            entries[s.name] = {"type": "stdio", "command": s.command, "args": list(s.args), "env": dict(s.env)}
        rules += [f"mcp__{s.name}__{tool}" for tool in s.tools] or [f"mcp__{s.name}"]
    return ClaudeMcp({"mcpServers": entries}, tuple(rules))


def _toml_string(text: str) -> str:
    # JSON's escapes (\" \\ \n \t \uXXXX …) are TOML basic-string escapes too; DEL must be escaped in TOML
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _codex_fields(s: McpServer) -> dict[str, Any]:
    if s.transport is Transport.HTTP:
        fields: dict[str, Any] = {"url": s.url, "http_headers": dict(s.headers)}
    else:
        fields = {"command": s.command, "args": list(s.args), "env": dict(s.env)}
    if s.tools:
        fields["enabled_tools"] = list(s.tools)
    # required: Codex waits for the server before the first turn (an optional one still starting is
    # left out of it); approve: `codex exec` never asks, and the profile named these tools
    fields |= {"required": True, "default_tools_approval_mode": "approve"}
    return {key: value for key, value in fields.items() if value or key == "args"}


def codex_mcp_toml(servers: Sequence[McpServer]) -> str:
    """``[mcp_servers.<name>]`` tables to add to Codex's ``config.toml``."""
    blocks = []
    for s in _bound(servers):
        lines = [f"[mcp_servers.{s.name}]"]  # names are bare-key safe (mcp_servers.NAME)
        lines += [f"{key} = {_toml_value(value)}" for key, value in _codex_fields(s).items()]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def codex_mcp_override(servers: Sequence[McpServer], disabled: Mapping[str, Sequence[str]] | None = None) -> str:
    """``mcp_servers=<inline table>`` for ``codex -c``: it replaces the whole table for one run,
    so the servers in the user's own ``config.toml`` stay out of it (as Claude's strict config does).
    ``disabled``: server name -> tools to turn off (``disabled_tools``; a profile's deny rules)."""
    off = disabled or {}
    return "mcp_servers=" + _toml_value({s.name: _codex_fields(s) | ({"disabled_tools": list(off[s.name])}
                                                                    if off.get(s.name) else {})
                                         for s in _bound(servers)})


def gemini_mcp_settings(servers: Sequence[McpServer]) -> dict[str, Any]:
    """The ``mcpServers`` part of Gemini CLI's ``settings.json``."""
    entries: dict[str, Any] = {}
    for s in _bound(servers):
        if s.transport is Transport.HTTP:
            entry: dict[str, Any] = {"httpUrl": s.url, **({"headers": dict(s.headers)} if s.headers else {})}
        else:
            entry = {"command": s.command, "args": list(s.args), "env": dict(s.env)}
        if s.tools:
            entry["includeTools"] = list(s.tools)
        entries[s.name] = entry
    return {"mcpServers": entries}


def opencode_mcp_config(servers: Sequence[McpServer]) -> dict[str, Any]:
    """The ``mcp`` (and, where a server is narrowed, ``tools``) part of opencode's config."""
    entries: dict[str, Any] = {}
    tools: dict[str, bool] = {}
    for s in _bound(servers):
        if s.transport is Transport.HTTP:
            entries[s.name] = {"type": "remote", "url": s.url, "enabled": True,
                               **({"headers": dict(s.headers)} if s.headers else {})}
        else:
            entries[s.name] = {"type": "local", "command": [str(s.command), *s.args], "environment": dict(s.env),
                               "enabled": True}
        if s.tools:
            tools[f"{s.name}_*"] = False
            tools.update({f"{s.name}_{tool}": True for tool in s.tools})
    return {"mcp": entries, **({"tools": tools} if tools else {})}
