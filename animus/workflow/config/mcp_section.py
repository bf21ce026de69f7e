"""``mcp_servers`` in workflow YAML: the top-level catalog and each agent's list, with file:line errors.

The catalog is checked per file (``read_catalog``); an agent's list is kept
raw (``read_agent_list``) because it may name a server another file defines,
and is resolved once every file is merged (``resolve_agents``). The rules
themselves are ``animus.workflow.mcp_servers``'s; this module only locates
their errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from yaml.nodes import MappingNode, Node

from animus.errors import InvalidInput
from animus.workflow.config.nodes import MAX_VALUES, NodeReader, jsonable, one_line
from animus.workflow.mcp_servers import McpServer, parse_agent_servers, parse_servers
from animus.workflow.model import AgentProfile

__all__ = ["read_agent_list", "read_catalog", "resolve_agents"]


def _plain(reader: NodeReader, node: Node, path: str) -> Any:
    """JSON-ready data (``config{}`` goes into the compiled config as it is)."""
    try:
        return jsonable(reader._ctor.construct_object(node, deep=True), [MAX_VALUES])
    except ValueError as exc:
        raise reader.err(node, path, str(exc), fix="use plain strings, numbers, booleans, lists and mappings") from None


def read_catalog(reader: NodeReader, node: Node) -> dict[str, McpServer]:
    """The top-level map, one server at a time so that an error points at the key it names."""
    out: dict[str, McpServer] = {}
    for name, k, v in reader.items(node, "mcp_servers"):
        reader.note(f"mcp_servers.{name}", k)
        try:
            out |= parse_servers({name: _plain(reader, v, f"mcp_servers.{name}")})
        except InvalidInput as exc:  # "mcp_servers.<name>.<key>: ...": point at <key>'s line
            key = exc.message.split(":", 1)[0].removeprefix(f"mcp_servers.{name}.").split(".")[0]
            at = next((kn for kn, _ in v.value if kn.value == key), v) if isinstance(v, MappingNode) else v
            raise reader.err(at, "", exc.message, exc.fix) from None
    return out


def read_agent_list(reader: NodeReader, node: Node, path: str) -> Any:
    """An agent's list as plain data, each item's line noted for ``resolve_agents``."""
    where = f"{path}.mcp_servers"
    reader.note(where, node)
    for i, item in enumerate(reader.seq(node, where)):
        reader.note(f"{where}[{i}]", item)
    return _plain(reader, node, where)


def resolve_agents(agents: dict[str, AgentProfile], lists: Mapping[str, Any], catalog: Mapping[str, McpServer],
                   locs: Mapping[str, tuple[str, int]], fallback: str) -> None:
    """Each agent's list against the merged catalog, into its profile (in place)."""
    for aid, raw in lists.items():
        if raw is None or aid not in agents:
            continue
        where = f"agents.{aid}.mcp_servers"
        try:
            agents[aid] = replace(agents[aid], mcp_servers=parse_agent_servers(raw, catalog, where))
        except InvalidInput as exc:
            at = _culprit(raw, catalog, where)
            message = exc.message if exc.message.startswith(at) else f"{at}: {exc.message}"
            src, line = locs.get(at, locs.get(where, (fallback, 1)))
            raise InvalidInput(one_line(f"{src}:{line}: {message}"), fix=exc.fix,
                               details={"file": src, "line": line, "field": at}) from None


def _culprit(raw: Any, catalog: Mapping[str, McpServer], where: str) -> str:
    """The first item that fails on its own (else the list: a name listed twice)."""
    for i, item in enumerate(raw if isinstance(raw, list) else ()):
        try:
            parse_agent_servers([item], catalog, where)
        except InvalidInput:
            return f"{where}[{i}]"
    if isinstance(raw, list):  # a duplicate: the second of the pair
        names = [str(item if isinstance(item, str) else item.get("name") or next(iter(item)))
                 for item in raw if isinstance(item, (str, dict)) and item]
        dup = next((i for i, n in enumerate(names) if n in names[:i]), None)
        return where if dup is None else f"{where}[{dup}]"
    return where
