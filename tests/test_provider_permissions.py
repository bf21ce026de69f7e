"""Agent permissions: the YAML block, each CLI's mapping, and where ``agent/run`` may run and write.

Pure and fast; the same mappings are exercised against the real CLIs in
``test_agent_clis.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from animus.errors import InvalidInput
from animus.plugin_runtime import protocol as p
from animus.plugins.providers import CLI_VENDORS
from animus.plugins.providers.events import PermissionDenied, RunResult
from animus.plugins.providers.run_contract import RunRequest, confine, shape_result
from animus.plugins.providers.workspace import fingerprint
from animus.workflow.permissions import AgentPermissions, parse_permissions

ROOT_REFUSED = ("--dangerously-skip-permissions", "bypassPermissions", "--dangerously-bypass-approvals-and-sandbox")


def test_permissions_block_defaults_short_form_and_errors() -> None:
    assert parse_permissions(None) == AgentPermissions("edit")
    assert parse_permissions("read-only") == AgentPermissions("read-only")
    assert parse_permissions({"mode": "full", "allow_tools": "WebFetch"}).allow_tools == ("WebFetch",)
    for bad, words in (({"mode": "yolo"}, "mode must be one of"), ({"allow": []}, "unknown key 'allow'"),
                       ({"deny_tools": [3]}, "list of tool names"),
                       ({"allow_tools": ["x"], "deny_tools": ["x"]}, "both allow_tools and deny_tools")):
        with pytest.raises(InvalidInput, match=words) as info:
            parse_permissions(bad)
        assert info.value.fix


@pytest.mark.parametrize("vendor", sorted(CLI_VENDORS))
@pytest.mark.parametrize("mode", ["read-only", "edit", "full"])
def test_no_mode_uses_a_flag_the_cli_refuses_as_root(vendor: str, mode: str, tmp_path: Path) -> None:
    launch = CLI_VENDORS[vendor].launch(AgentPermissions(mode), {}, tmp_path)
    flat = " ".join(launch.args) + json.dumps(launch.env)
    assert not any(flag in flat for flag in ROOT_REFUSED)


def test_each_cli_gets_its_own_words_for_the_modes(tmp_path: Path) -> None:
    def args(vendor: str, mode: str, **kw: tuple[str, ...]) -> list[str]:
        return list(CLI_VENDORS[vendor].launch(AgentPermissions(mode, **kw), {}, tmp_path).args)

    assert args("claude", "read-only")[3:5] == ["--permission-mode", "default"]
    assert args("claude", "edit")[3:] == ["--permission-mode", "acceptEdits"]  # after --strict-mcp-config …
    assert "Bash" in args("claude", "full") and "--allowedTools" in args("claude", "full")
    assert args("claude", "edit", deny_tools=("WebFetch",))[-2:] == ["--disallowedTools", "WebFetch"]
    assert args("codex", "read-only")[:2] == ["--sandbox", "read-only"]
    assert args("codex", "edit")[:2] == ["--sandbox", "workspace-write"]
    assert "sandbox_workspace_write.exclude_slash_tmp=true" in args("codex", "edit")
    assert args("codex", "full")[:2] == ["--sandbox", "danger-full-access"]
    with pytest.raises(ValueError, match="codex has no per-tool permissions"):
        args("codex", "edit", allow_tools=("shell",))
    assert args("gemini", "read-only")[1:3] == ["--approval-mode", "default"]
    edit = args("gemini", "edit")
    assert edit[1:3] == ["--approval-mode", "auto_edit"] and "--policy" in edit
    assert 'toolName = "run_shell_command"' in Path(edit[edit.index("--policy") + 1]).read_text()
    assert args("gemini", "full")[1:3] == ["--approval-mode", "yolo"]
    env = CLI_VENDORS["opencode"].launch(AgentPermissions("read-only", deny_tools=("webfetch",)), {}, tmp_path).env
    rules = json.loads(env["OPENCODE_PERMISSION"])
    assert rules["edit"] == "ask" and rules["bash"]["*"] == "ask" and rules["webfetch"] == "deny"


def test_codex_reaches_a_gateway_through_a_model_provider_entry(tmp_path: Path) -> None:
    args = CLI_VENDORS["codex"].launch(AgentPermissions(), {"OPENAI_BASE_URL": "http://gw:8/v1"}, tmp_path).args
    assert 'model_provider="animus"' in args
    assert any('base_url="http://gw:8/v1"' in a and 'wire_api="responses"' in a for a in args)


def _request(**kw: object) -> RunRequest:
    return RunRequest.from_params({"prompt": "x", "workflow_id": "wf-1", **kw}, resume=False)


def test_cwd_and_session_file_stay_inside_the_run(tmp_path: Path) -> None:
    state, project = tmp_path / "state", tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (state / "worktrees" / "wf-1").mkdir(parents=True)
    ok = str(state / "runs" / "wf-1" / "build.session.json")
    confine(_request(cwd=str(project / "sub"), session_file=ok), str(state), str(project))
    confine(_request(cwd=str(state / "worktrees" / "wf-1")), str(state), str(project))
    (project / "escape").symlink_to(tmp_path)
    victim = tmp_path / "victim.json"
    for bad in ({"cwd": "/etc"}, {"cwd": str(project / "escape")}, {"cwd": "relative"},
                {"session_file": str(victim)}, {"session_file": str(state / "runs" / "wf-2" / "b.session.json")},
                {"session_file": str(state / "runs" / "wf-1" / ".." / "wf-2" / "b.session.json")},
                {"session_file": str(state / "runs" / "wf-1" / "config.json")},
                {"session_file": "runs/wf-1/b.session.json"}):
        with pytest.raises(p.RpcError) as info:
            confine(_request(**bad), str(state), str(project))
        assert info.value.code == p.INVALID_PARAMS
    assert not victim.exists()


def test_denied_and_unchanged_is_a_failed_phase_that_says_why() -> None:
    denial = PermissionDenied("Bash", "printf x > out.txt", "Output redirection to 'out.txt' needs approval", "t1")
    verdict = '```json\n{"verdict": "advance", "reason": "done", "confidence": 0.9, "risk": "low"}\n```'
    stuck = shape_result(RunResult("claude", final_text=verdict, denials=(denial,), workspace_changed=False), True)
    assert stuck["verdict"] == "fail" and stuck["reason"].startswith("permission denied, nothing changed")
    assert "printf x > out.txt" in stuck["reason"] and "needs approval" in stuck["reason"]
    assert stuck["permission_denied"][0]["tool"] == "Bash"
    changed = shape_result(RunResult("claude", final_text=verdict, denials=(denial,), workspace_changed=True), True)
    assert changed["verdict"] == "advance" and "1 tool use(s) denied" in changed["reason"]


def test_fingerprint_sees_a_new_file_and_ignores_git_internals(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    before = fingerprint(tmp_path)
    (tmp_path / ".git" / "index").write_text("x")
    assert fingerprint(tmp_path) == before
    (tmp_path / "out.txt").write_text("x")
    assert fingerprint(tmp_path) != before
