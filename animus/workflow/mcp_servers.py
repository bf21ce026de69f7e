"""``mcp_servers``: the MCP servers an agent profile names, validated at load time.

Reference §B.1/B.2: a top-level map name → ``{command, args[], transport
(stdio|http), url, env{}, tools[], config{}}``, and per agent a list whose
items are a name from that map or an inline definition (``{github: {...}}``
or ``{name: github, ...}``). ``tools`` are allowed tool-name prefixes (empty:
every tool). ``headers{}`` is accepted for http servers (every CLI can send
them). ``config{}`` is kept, opaque, for the server's own use; no CLI has a
place for it, so the renderers do not pass it.

``animus`` is Animus's own server (``animus mcp serve``): a profile may name
it without defining it, and a top-level ``animus`` entry may only narrow its
``tools``, add ``env`` or ``config``; it cannot give it a command or url.
At run time ``bind`` turns it into the command bound to the run's project,
with the run's task and workflow ids in its environment (see
``animus/mcp/run_env.py``), and expands every server's tool prefixes into
tool names where the names are known.

Pure: data in, frozen dataclasses or ``InvalidInput`` (naming the field path
and the fix) out; the YAML loader adds the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from animus.errors import InvalidInput

__all__ = ["ANIMUS", "Transport", "McpServer", "RunBinding", "parse_servers", "parse_agent_servers", "bind"]

ANIMUS = "animus"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what every CLI accepts as a server name
_KEYS = ("command", "args", "transport", "url", "env", "headers", "tools", "config")


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


@dataclass(frozen=True)
class McpServer:
    """One server as a profile names it; after ``bind``, as a CLI must start it."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    transport: Transport = Transport.STDIO
    url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    tools: tuple[str, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        where = f"mcp_servers.{self.name}"
        if not NAME.match(self.name):
            raise InvalidInput(f"{where}: invalid server name {self.name!r}",
                               fix="use letters, digits, _ and - (at most 64)")
        if self.name == ANIMUS and not self.command:
            return  # Animus's own server, made concrete by bind()
        if self.transport is Transport.STDIO and (not self.command or self.url):
            raise InvalidInput(f"{where}: a stdio server needs a command and no url",
                               fix="set command (and args), or transport: http with a url")
        if self.transport is Transport.HTTP and (not self.url or self.command or self.args):
            raise InvalidInput(f"{where}: an http server needs a url and no command",
                               fix="set url: http://…/mcp, or transport: stdio with a command")
        if self.url is not None and not re.match(r"^https?://[^\s/]+", self.url):
            raise InvalidInput(f"{where}.url: expected an http:// or https:// URL, got {self.url!r}",
                               fix="e.g. url: http://127.0.0.1:9000/mcp")
        if self.headers and self.transport is not Transport.HTTP:
            raise InvalidInput(f"{where}.headers: only an http server sends headers",
                               fix="remove headers, or use transport: http with a url")

    @property
    def builtin(self) -> bool:
        return self.name == ANIMUS

    def to_wire(self) -> dict[str, Any]:
        """Plain data for ``agent/run`` params (msgpack/JSON); ``from_wire`` reads it back."""
        return {"name": self.name, "command": self.command, "args": list(self.args), "transport": self.transport.value,
                "url": self.url, "env": dict(self.env), "headers": dict(self.headers), "tools": list(self.tools),
                "config": dict(self.config)}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> McpServer:
        return cls(str(data["name"]), data.get("command"), tuple(data.get("args") or ()),
                   Transport(data.get("transport") or "stdio"), data.get("url"), dict(data.get("env") or {}),
                   dict(data.get("headers") or {}), tuple(data.get("tools") or ()), dict(data.get("config") or {}))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{where}: expected a list of strings", fix="e.g. [--flag, value]")
    return tuple(value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, (str, int, float, bool)) for v in value.values()):
        raise InvalidInput(f"{where}: expected a mapping of names to strings", fix="e.g. {GITHUB_TOKEN: '${GITHUB_TOKEN}'}")
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}


def _server(name: str, raw: Any, where: str) -> McpServer:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected a mapping", fix=f"give some of {', '.join(_KEYS)}")
    unknown = sorted(set(raw) - set(_KEYS))
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(map(str, unknown))}", fix=f"use {', '.join(_KEYS)}")
    transport = raw.get("transport", "stdio")
    if transport not in ("stdio", "http"):
        raise InvalidInput(f"{where}.transport: expected stdio or http, got {transport!r}",
                           fix="transport: stdio (with a command) or http (with a url)")
    for key in ("command", "url"):
        if key in raw and not isinstance(raw[key], str):
            raise InvalidInput(f"{where}.{key}: expected a string", fix="write one value; quote it if it has : or #")
    if "config" in raw and not isinstance(raw["config"], dict):
        raise InvalidInput(f"{where}.config: expected a mapping", fix="write key: value pairs")
    if name == ANIMUS and set(raw) & {"command", "args", "url", "headers", "transport"}:
        raise InvalidInput(f"{where}: 'animus' is Animus's own server (animus mcp serve) and takes only "
                           "tools, env and config", fix="rename your server, or keep only tools/env/config")
    return McpServer(name, raw.get("command"), _strings(raw.get("args", []), f"{where}.args"), Transport(transport),
                     raw.get("url"), _string_map(raw.get("env", {}), f"{where}.env"),
                     _string_map(raw.get("headers", {}), f"{where}.headers"),
                     _strings(raw.get("tools", []), f"{where}.tools"), dict(raw.get("config") or {}))


def parse_servers(raw: Any, where: str = "mcp_servers") -> dict[str, McpServer]:
    """The top-level map, name → server."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected a mapping of server names to definitions",
                           fix="e.g. mcp_servers: {github: {command: npx, args: [...]}}")
    return {str(name): _server(str(name), body, f"{where}.{name}") for name, body in raw.items()}


def parse_agent_servers(raw: Any, catalog: Mapping[str, McpServer], where: str) -> tuple[McpServer, ...]:
    """An agent's list: names from ``catalog`` (or ``animus``), or inline definitions."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidInput(f"{where}: expected a list of server names or definitions", fix="e.g. [animus, github]")
    out: dict[str, McpServer] = {}
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            server = catalog.get(item) or (McpServer(ANIMUS) if item == ANIMUS else None)
            if server is None:
                known = sorted({*catalog, ANIMUS})
                raise InvalidInput(f"{at}: unknown MCP server {item!r}", fix=f"define it under mcp_servers, or use one of {', '.join(known)}")
        elif isinstance(item, dict) and "name" in item:
            body = {k: v for k, v in item.items() if k != "name"}
            server = _server(str(item["name"]), body, at)
        elif isinstance(item, dict) and len(item) == 1:
            name, body = next(iter(item.items()))
            server = _server(str(name), body, at)
        else:
            raise InvalidInput(f"{at}: expected a server name, {{<name>: {{...}}}} or {{name: <name>, ...}}",
                               fix="e.g. - animus, or - {scratch: {command: scratch-mcp}}")
        if server.name in out:
            raise InvalidInput(f"{at}: MCP server {server.name!r} is listed twice", fix="keep one of them")
        out[server.name] = server
    return tuple(out.values())


@dataclass(frozen=True)
class RunBinding:
    """What a run knows when it starts an agent: where Animus is and whose task it is."""

    project_root: str
    python: str
    task_id: str | None = None
    workflow_id: str | None = None
    animus_home: str | None = None
    animus_tools: tuple[str, ...] = ()  # animus.mcp.tools.TOOL_NAMES, passed in: this layer cannot import it


def _allowed(prefixes: tuple[str, ...], known: Sequence[str], where: str) -> tuple[str, ...]:
    """Prefixes → the known tool names they match; with no known names, the entries as given."""
    if not prefixes or not known:
        return prefixes
    names = tuple(t for t in known if any(t.startswith(p) for p in prefixes))
    if not names:
        raise InvalidInput(f"{where}.tools: {', '.join(prefixes)} match(es) no tool", fix=f"tools are {', '.join(known)}")
    return names


def bind(servers: Sequence[McpServer], run: RunBinding) -> tuple[McpServer, ...]:
    """The servers as a CLI must start them for this run: ``animus`` made concrete, prefixes expanded."""
    out = []
    for server in servers:
        if server.builtin:
            env = {k: v for k, v in {"ANIMUS_HOME": run.animus_home, "ANIMUS_TASK_ID": run.task_id,
                                     "ANIMUS_WORKFLOW_ID": run.workflow_id}.items() if v}
            server = replace(server, command=run.python, env={**server.env, **env},
                             args=("-m", "animus.cli.main", "--project-root", run.project_root, "mcp", "serve"),
                             tools=_allowed(server.tools, run.animus_tools, f"mcp_servers.{ANIMUS}"))
        out.append(server)
    return tuple(out)
