"""Each CLI's launch with the run's MCP servers: what it is given, and how permissions reach MCP tools.

Pure and fast (files in a temporary directory, no processes); the real CLIs
use these launches against a real daemon in ``test_agent_clis.py``
(``test_agent_sets_its_task_and_files_a_follow_up_through_the_animus_mcp_server``).
"""

from __future__ import annotations

import json
import stat
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

from animus.mcp.tools import TOOL_NAMES
from animus.plugin_runtime import protocol as p
from animus.plugins.providers import CLI_VENDORS
from animus.plugins.providers.http_plugin import OaiProviderPlugin
from animus.plugins.providers.launch import Launch
from animus.plugins.providers.run_contract import RunRequest
from animus.workflow.mcp_servers import McpServer, RunBinding, bind, parse_agent_servers
from animus.workflow.permissions import AgentPermissions

RUN = RunBinding("/srv/project", sys.executable, "task:TASK-007", "wf-1", "/srv/animus-home", TOOL_NAMES)


def servers(*items: Any) -> tuple[McpServer, ...]:
    return bind(parse_agent_servers(list(items), {}, "agents.a.mcp_servers"), RUN)


def launch(vendor: str, tmp_path: Path, *items: Any, env: dict[str, str] | None = None, **permissions: Any) -> Launch:
    return CLI_VENDORS[vendor].launch(AgentPermissions(**permissions), env or {}, tmp_path / "scratch",
                                      servers(*items))


def test_claude_gets_a_private_strict_config_and_the_tools_allowed(tmp_path: Path) -> None:
    args = list(launch("claude", tmp_path, {"animus": {"tools": ["subject_"]}},
                       deny_tools=("mcp__animus__subject_update",)).args)
    assert args[:2] == ["--strict-mcp-config", "--mcp-config"]
    config = Path(args[2])
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    animus = json.loads(config.read_text())["mcpServers"]["animus"]
    assert animus["type"] == "stdio" and animus["command"] == sys.executable
    assert animus["args"][-4:] == ["--project-root", "/srv/project", "mcp", "serve"]
    assert animus["env"] == {"ANIMUS_HOME": "/srv/animus-home", "ANIMUS_TASK_ID": "task:TASK-007",
                             "ANIMUS_WORKFLOW_ID": "wf-1"}
    allowed = args[args.index("--allowedTools") + 1:args.index("--disallowedTools")]
    assert "mcp__animus__subject_status" in allowed and "mcp__animus__workflow_run" not in allowed
    assert args[args.index("--disallowedTools") + 1:] == ["mcp__animus__subject_update"]  # deny wins in Claude


def test_claude_without_servers_still_gets_an_empty_strict_config(tmp_path: Path) -> None:
    args = list(launch("claude", tmp_path).args)
    assert args[:2] == ["--strict-mcp-config", "--mcp-config"]  # the user's own servers never join a run
    assert json.loads(Path(args[2]).read_text()) == {"mcpServers": {}}


def _codex_servers(args: tuple[str, ...]) -> dict[str, Any]:
    override = next(a for a in args if a.startswith("mcp_servers="))
    return tomllib.loads(override)["mcp_servers"]


def test_codex_replaces_its_server_table_for_the_run(tmp_path: Path) -> None:
    table = _codex_servers(launch("codex", tmp_path, "animus", deny_tools=("mcp__animus__workflow_run",)).args)
    animus = table.pop("animus")
    assert table == {}
    assert animus["command"] == sys.executable and animus["env"]["ANIMUS_TASK_ID"] == "task:TASK-007"
    assert animus["required"] is True and animus["default_tools_approval_mode"] == "approve"
    assert animus["disabled_tools"] == ["workflow_run"]
    assert _codex_servers(launch("codex", tmp_path).args) == {}  # none: the user's config.toml servers stay out
    for rule in ("shell", "mcp__github__get_issue"):  # not an MCP tool of this run
        with pytest.raises(ValueError, match="codex has no per-tool permissions but for the run's MCP tools"):
            launch("codex", tmp_path, "animus", deny_tools=(rule,))


def test_gemini_gets_a_home_of_its_own_that_keeps_the_users_logins_and_sessions(tmp_path: Path) -> None:
    user = tmp_path / "user"
    (user / ".gemini" / "tmp").mkdir(parents=True)
    (user / ".gemini" / "oauth_creds.json").write_text("{}")
    theirs = json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}, "mcpServers": {"mine": {"command": "m"}}})
    (user / ".gemini" / "settings.json").write_text(theirs)
    got = launch("gemini", tmp_path, {"animus": {"tools": ["subject_"]}}, env={"HOME": str(user)})
    assert got.args[-2:] == ("--allowed-mcp-server-names", "animus")
    home = Path(got.env["GEMINI_CLI_HOME"]) / ".gemini"
    settings = json.loads((home / "settings.json").read_text())
    assert settings["security"] == {"auth": {"selectedType": "gemini-api-key"}}
    assert list(settings["mcpServers"]) == ["animus"]  # the user's own server is not the run's
    assert settings["mcpServers"]["animus"]["includeTools"][0] == "subject_list"
    assert (home / "oauth_creds.json").resolve() == user / ".gemini" / "oauth_creds.json"
    assert (home / "tmp").resolve() == user / ".gemini" / "tmp"  # sessions: --resume finds them later
    assert (user / ".gemini" / "settings.json").read_text() == theirs  # untouched
    assert "GEMINI_CLI_HOME" not in launch("gemini", tmp_path / "none", env={"HOME": str(user)}).env


def test_gemini_says_when_the_users_settings_cannot_be_merged(tmp_path: Path) -> None:
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "settings.json").write_text('{\n  // a comment\n  "ui": {}\n}')
    with pytest.raises(ValueError, match="cannot add the run's MCP servers to .*settings.json.*fix:"):
        launch("gemini", tmp_path, "animus", env={"HOME": str(tmp_path)})


def test_opencode_merges_the_servers_into_the_users_config_and_permissions(tmp_path: Path) -> None:
    user = {"provider": {"scripted": {"options": {"baseURL": "http://127.0.0.1:9/v1"}}}, "mcp": {"mine": {}}}
    got = launch("opencode", tmp_path, {"animus": {"tools": ["subject_status"]}},
                 env={"OPENCODE_CONFIG_CONTENT": json.dumps(user)}, deny_tools=("animus_workflow_run",))
    config = json.loads(got.env["OPENCODE_CONFIG_CONTENT"])
    assert config["provider"] == user["provider"]
    assert config["mcp"]["animus"]["command"][0] == sys.executable and config["mcp"]["animus"]["enabled"]
    assert config["tools"] == {"animus_*": False, "animus_subject_status": True}
    rules = list(json.loads(got.env["OPENCODE_PERMISSION"]).items())
    assert rules.index(("animus_*", "allow")) < rules.index(("animus_workflow_run", "deny"))  # the last match wins
    with pytest.raises(ValueError, match="OPENCODE_CONFIG_CONTENT is not JSON"):
        launch("opencode", tmp_path, "animus", env={"OPENCODE_CONFIG_CONTENT": "{nope"})


def test_agent_run_params_carry_the_servers_and_bad_ones_are_refused() -> None:
    sent = servers("animus", {"docs": {"transport": "http", "url": "http://127.0.0.1:9/mcp"}})
    request = RunRequest.from_params({"prompt": "x", "task_id": "task:TASK-007",
                                      "mcp_servers": [s.to_wire() for s in sent]}, resume=False)
    assert request.mcp_servers == sent and request.task_id == "task:TASK-007"
    for bad, words in (("animus", "must be a list"), ([{"name": "no spaces"}], "invalid server name"),
                       ([{"name": "x", "transport": "ftp"}], "malformed server object")):
        with pytest.raises(p.RpcError, match=words) as info:
            RunRequest.from_params({"prompt": "x", "mcp_servers": bad}, resume=False)
        assert info.value.code == p.INVALID_PARAMS


def test_oai_refuses_a_profile_with_mcp_servers_rather_than_dropping_them() -> None:
    request = RunRequest.from_params({"prompt": "x", "mcp_servers": [{"name": "animus"}]}, resume=False)
    result = OaiProviderPlugin().execute(request, lambda event: None, threading.Event())
    assert result.error is not None and "cannot give the agent the MCP servers" in result.error.message
