"""``mcp_servers`` parsing and binding, and each agent CLI's form of them (pure; milliseconds).

The expected shapes are the ones the pinned CLIs define: Claude Code's
``--mcp-config`` JSON, Codex's ``[mcp_servers.<name>]`` TOML (read back with
``tomllib``), Gemini CLI's ``settings.json`` ``mcpServers`` and opencode's
``mcp`` config (see docs/mcp.md).
"""

from __future__ import annotations

import json
import tomllib

import pytest

from animus.errors import InvalidInput
from animus.mcp.tools import TOOL_NAMES
from animus.workflow.mcp_render import claude_mcp, codex_mcp_override, codex_mcp_toml, gemini_mcp_settings, opencode_mcp_config
from animus.workflow.mcp_servers import McpServer, RunBinding, Transport, bind, parse_agent_servers, parse_servers

TOP = {
    "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
               "env": {"GITHUB_TOKEN": "t0k"}, "tools": ["get_issue", "list_issues"]},
    "docs": {"transport": "http", "url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer x"}},
    "animus": {"tools": ["subject_", "workflow_get"]},
}
RUN = RunBinding(project_root="/srv/repo", python="/venv/bin/python", task_id="task:TASK-007",
                 workflow_id="wf-abc", animus_home="/home/a/.animus", animus_tools=TOOL_NAMES)


def servers() -> tuple[McpServer, ...]:
    return bind(parse_agent_servers(["animus", "github", "docs"], parse_servers(TOP), "agents.builder.mcp_servers"), RUN)


ANIMUS_ARGS = ["-m", "animus.cli.main", "--project-root", "/srv/repo", "mcp", "serve"]
ANIMUS_ENV = {"ANIMUS_HOME": "/home/a/.animus", "ANIMUS_TASK_ID": "task:TASK-007", "ANIMUS_WORKFLOW_ID": "wf-abc"}
ANIMUS_TOOLS = ["subject_list", "subject_get", "subject_create", "subject_update", "subject_status", "subject_next",
                "subject_comment", "workflow_get"]


def test_parse_top_level_and_agent_lists() -> None:
    top = parse_servers(TOP)
    assert top["github"] == McpServer("github", "npx", ("-y", "@modelcontextprotocol/server-github"),
                                      env={"GITHUB_TOKEN": "t0k"}, tools=("get_issue", "list_issues"))
    assert top["docs"].transport is Transport.HTTP and top["docs"].url == "http://127.0.0.1:9000/mcp"
    inline = parse_agent_servers(["animus", {"name": "x", "command": "x-mcp"}, {"y": {"command": "y-mcp", "args": ["-v"]}}],
                                 {}, "agents.a.mcp_servers")
    assert [(s.name, s.command, s.args) for s in inline] == [("animus", None, ()), ("x", "x-mcp", ()), ("y", "y-mcp", ("-v",))]
    assert parse_agent_servers(None, top, "agents.a.mcp_servers") == ()


@pytest.mark.parametrize("raw, message", [
    ({"gh": {"args": ["x"]}}, "mcp_servers.gh: a stdio server needs a command and no url"),
    ({"gh": {"transport": "http"}}, "mcp_servers.gh: an http server needs a url and no command"),
    ({"gh": {"transport": "ws", "command": "x"}}, "mcp_servers.gh.transport: expected stdio or http, got 'ws'"),
    ({"gh": {"command": "x", "tool": ["a"]}}, "mcp_servers.gh: unknown key(s) tool"),
    ({"gh": {"command": "x", "env": {"A": ["list"]}}}, "mcp_servers.gh.env: expected a mapping of names to strings"),
    ({"gh": {"command": "x", "tools": "subject_"}}, "mcp_servers.gh.tools: expected a list of strings"),
    ({"gh": {"transport": "http", "url": "ftp://host/x"}}, "mcp_servers.gh.url: expected an http:// or https:// URL"),
    ({"g h": {"command": "x"}}, "mcp_servers.g h: invalid server name 'g h'"),
    ({"animus": {"command": "my-animus"}}, "mcp_servers.animus: 'animus' is Animus's own server"),
    ({"gh": {"command": "x", "headers": {"A": "b"}}}, "mcp_servers.gh.headers: only an http server sends headers"),
    (["gh"], "mcp_servers: expected a mapping of server names to definitions"),
])
def test_bad_definitions_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_servers(raw)
    assert err.value.message.startswith(message)


def test_bad_agent_lists_name_the_entry() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_agent_servers(["animus", "gihtub"], parse_servers(TOP), "agents.b.mcp_servers")
    assert err.value.message == "agents.b.mcp_servers[1]: unknown MCP server 'gihtub'"
    assert err.value.fix == "define it under mcp_servers, or use one of animus, docs, github"
    with pytest.raises(InvalidInput, match=r"agents.b.mcp_servers\[1\]: MCP server 'animus' is listed twice"):
        parse_agent_servers(["animus", "animus"], {}, "agents.b.mcp_servers")
    with pytest.raises(InvalidInput, match="expected a list"):
        parse_agent_servers("animus", {}, "agents.b.mcp_servers")


def test_bind_makes_animus_the_runs_own_server() -> None:
    animus, github, docs = servers()
    assert (animus.command, list(animus.args), dict(animus.env)) == ("/venv/bin/python", ANIMUS_ARGS, ANIMUS_ENV)
    assert list(animus.tools) == ANIMUS_TOOLS  # prefixes expanded to the tools animus mcp serve has
    assert github.tools == ("get_issue", "list_issues") and docs.tools == ()
    with pytest.raises(InvalidInput, match="mcp_servers.animus.tools: nope_ match"):
        bind(parse_agent_servers([{"animus": {"tools": ["nope_"]}}], {}, "a"), RUN)
    bare = bind((McpServer("animus"),), RunBinding("/r", "py"))[0]
    assert dict(bare.env) == {} and bare.tools == ()


def test_servers_cross_the_wire_unchanged() -> None:
    unbound = parse_agent_servers(["animus", "github", "docs"], parse_servers(TOP), "a")
    for server in (*unbound, *servers()):
        assert McpServer.from_wire(json.loads(json.dumps(server.to_wire()))) == server


def test_claude_mcp_config_and_allowed_tools() -> None:
    claude = claude_mcp(servers())
    assert claude.config == {"mcpServers": {
        "animus": {"type": "stdio", "command": "/venv/bin/python", "args": ANIMUS_ARGS, "env": ANIMUS_ENV},
        "github": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                   "env": {"GITHUB_TOKEN": "t0k"}},
        "docs": {"type": "http", "url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer x"}}}}
    assert claude.allowed_tools == (*(f"mcp__animus__{t}" for t in ANIMUS_TOOLS), "mcp__github__get_issue",
                                    "mcp__github__list_issues", "mcp__docs")
    assert claude.argv("/run/mcp.json") == ["--strict-mcp-config", "--mcp-config", "/run/mcp.json"]


def test_codex_toml_reads_back_as_its_mcp_servers_tables() -> None:
    run = {"required": True, "default_tools_approval_mode": "approve"}  # wait for it; `codex exec` never asks
    tables = {"mcp_servers": {
        "animus": {"command": "/venv/bin/python", "args": ANIMUS_ARGS, "env": ANIMUS_ENV, "enabled_tools": ANIMUS_TOOLS,
                   **run},
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"], "env": {"GITHUB_TOKEN": "t0k"},
                   "enabled_tools": ["get_issue", "list_issues"], **run},
        "docs": {"url": "http://127.0.0.1:9000/mcp", "http_headers": {"Authorization": "Bearer x"}, **run}}}
    assert tomllib.loads(codex_mcp_toml(servers())) == tables
    assert tomllib.loads(codex_mcp_override(servers())) == tables  # the same, as one -c override
    narrowed = tomllib.loads(codex_mcp_override(servers(), {"github": ["list_issues"]}))["mcp_servers"]
    assert narrowed["github"]["disabled_tools"] == ["list_issues"] and "disabled_tools" not in narrowed["animus"]
    odd = 'quote " back\\ new\nline tab\t del\x7f é 😀'
    text = codex_mcp_toml((McpServer("odd", "cmd", (odd,), env={"WEIRD KEY=": odd}),))
    assert tomllib.loads(text)["mcp_servers"]["odd"] == {"command": "cmd", "args": [odd], "env": {"WEIRD KEY=": odd},
                                                         **run}


def test_gemini_settings_mcp_servers() -> None:
    assert gemini_mcp_settings(servers()) == {"mcpServers": {
        "animus": {"command": "/venv/bin/python", "args": ANIMUS_ARGS, "env": ANIMUS_ENV, "includeTools": ANIMUS_TOOLS},
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"], "env": {"GITHUB_TOKEN": "t0k"},
                   "includeTools": ["get_issue", "list_issues"]},
        "docs": {"httpUrl": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "Bearer x"}}}}


def test_opencode_mcp_config() -> None:
    config = opencode_mcp_config(servers())
    assert config["mcp"] == {
        "animus": {"type": "local", "command": ["/venv/bin/python", *ANIMUS_ARGS], "environment": ANIMUS_ENV,
                   "enabled": True},
        "github": {"type": "local", "command": ["npx", "-y", "@modelcontextprotocol/server-github"],
                   "environment": {"GITHUB_TOKEN": "t0k"}, "enabled": True},
        "docs": {"type": "remote", "url": "http://127.0.0.1:9000/mcp", "enabled": True,
                 "headers": {"Authorization": "Bearer x"}}}
    assert list(config["tools"].items()) == [("animus_*", False), *((f"animus_{t}", True) for t in ANIMUS_TOOLS),
                                             ("github_*", False), ("github_get_issue", True), ("github_list_issues", True)]


def test_renderers_refuse_an_unbound_animus() -> None:
    unbound = parse_agent_servers(["animus"], {}, "a")
    for render in (claude_mcp, codex_mcp_toml, gemini_mcp_settings, opencode_mcp_config):
        with pytest.raises(InvalidInput, match="MCP server 'animus' is not bound to a run"):
            render(unbound)  # type: ignore[operator]
