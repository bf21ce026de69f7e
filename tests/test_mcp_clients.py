"""The rendered MCP configs, read by the real agent CLIs, reach the real ``animus mcp serve``.

For each pinned CLI (``scripts/install-agent-clis`` puts them in
``.tools/agent-clis``, or ``ANIMUS_AGENT_CLIS`` names the folder; skipped,
saying so, where they are absent) the config ``animus.workflow.mcp_render``
writes is given to the CLI the way a provider would, and the CLI's own
listing says the ``animus`` server is connected (Claude Code: its ``init``
line; Gemini CLI and opencode: ``mcp list``) or, for Codex, whose ``mcp
list`` does not connect, that it read the server as written. No model is
contacted (Claude is pointed at a closed loopback port and stops after its
``init`` line) and no daemon is needed: ``initialize`` and ``tools/list``
work without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from animus.mcp.tools import TOOL_NAMES
from animus.workflow.mcp_render import claude_mcp, codex_mcp_toml, gemini_mcp_settings, opencode_mcp_config
from animus.workflow.mcp_servers import RunBinding, bind, parse_agent_servers

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("ANIMUS_AGENT_CLIS") or ROOT / ".tools" / "agent-clis") / "node_modules" / ".bin"


def cli(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in {BIN.parent.parent} (scripts/install-agent-clis)")
    return path


@pytest.fixture
def setup(tmp_path: Path) -> tuple[tuple, dict[str, str]]:  # type: ignore[type-arg]
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    run = RunBinding(str(project), sys.executable, "task:TASK-001", "wf-1", str(tmp_path / "animus-home"), TOOL_NAMES)
    servers = bind(parse_agent_servers([{"animus": {"tools": ["subject_"]}}], {}, "agents.a.mcp_servers"), run)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    env.update({"HOME": str(tmp_path / "home"), "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
    (tmp_path / "home").mkdir()
    return servers, env


def listing(argv: list[str | Path], env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def test_claude_code_connects_with_strict_mcp_config(setup: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    servers, env = setup
    rendered = claude_mcp(servers)
    (tmp_path / "mcp.json").write_text(json.dumps(rendered.config))
    env = {**env, "ANTHROPIC_BASE_URL": "http://127.0.0.1:9", "ANTHROPIC_API_KEY": "unused"}
    argv = [cli("claude"), "-p", "hi", *rendered.argv(str(tmp_path / "mcp.json")), "--allowedTools",
            *rendered.allowed_tools, "--output-format", "stream-json", "--verbose"]
    with subprocess.Popen([str(a) for a in argv], env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        init = json.loads(proc.stdout.readline())
        proc.kill()
    assert init["mcp_servers"] == [{"name": "animus", "status": "connected", "source": "dynamic"}]
    assert "mcp__animus__subject_status" in init["tools"]


def test_codex_reads_the_mcp_servers_table(setup: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    servers, env = setup
    (tmp_path / "codex").mkdir()
    (tmp_path / "codex" / "config.toml").write_text(codex_mcp_toml(servers))
    proc = subprocess.run([str(cli("codex")), "mcp", "list", "--json"], env={**env, "CODEX_HOME": str(tmp_path / "codex")},
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    listed = json.loads(proc.stdout)
    assert [(s["name"], s["enabled"], s["transport"]["command"], s["transport"]["args"], s["transport"]["env"])
            for s in listed] == [("animus", True, servers[0].command, list(servers[0].args), dict(servers[0].env))]


def test_gemini_cli_connects_from_settings(setup: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    servers, env = setup
    settings = tmp_path / "gem" / ".gemini"
    settings.mkdir(parents=True)
    config = gemini_mcp_settings(servers)
    # `gemini mcp list` gives a server 5 s to connect and answer a ping unless the entry says otherwise;
    # `animus mcp serve` starts within that alone, not always on 2 cores busy with the rest of the suite
    for entry in config["mcpServers"].values():
        entry.setdefault("timeout", 60_000)
    (settings / "settings.json").write_text(json.dumps(config))
    (settings / "trustedFolders.json").write_text(json.dumps({str(tmp_path): "TRUST_FOLDER"}))
    out = listing([cli("gemini"), "mcp", "list"], {**env, "GEMINI_CLI_HOME": str(tmp_path / "gem")}, tmp_path)
    assert "animus:" in out and "- Connected" in out, out


def test_opencode_connects_from_its_config(setup: tuple, tmp_path: Path) -> None:  # type: ignore[type-arg]
    servers, env = setup
    (tmp_path / "opencode.json").write_text(json.dumps(opencode_mcp_config(servers)))
    out = listing([cli("opencode"), "mcp", "list"], {**env, "OPENCODE_CONFIG": str(tmp_path / "opencode.json")}, tmp_path)
    assert "animus" in out and "connected" in out, out
