"""Gemini CLI: ``gemini --output-format stream-json -p <prompt>`` (and ``--output-format json``).

Stream shape (geminicli.com/docs/cli/headless; google-gemini/gemini-cli
``packages/core/src/output/types.ts``): ``init`` (``session_id``, ``model``),
``message`` (``role`` user|assistant, ``content``, ``delta``), ``tool_use``
(``tool_name``, ``tool_id``, ``parameters``), ``tool_result`` (``tool_id``,
``status`` success|error, ``output``, ``error``), ``error`` (``severity``
warning|error, non-fatal), and a final ``result`` (``status``, ``error``,
``stats{total_tokens, input_tokens, output_tokens, cached, input, duration_ms,
tool_calls}``). Gemini reports no cost.

The final text is the assistant text after the last tool call: earlier text is
narration ("I'll run the tests"), the decision comes at the end.

``--output-format json`` prints one pretty-printed object ``{session_id,
response, stats, error?}`` at exit; ``parse_json_output`` reads that.
Resume is ``--resume <session_id>``. Gemini has no system-prompt flag (only
the ``GEMINI_SYSTEM_MD`` file override), so a system prompt is prepended.

Permissions (Gemini CLI 0.61.0): ``read-only`` is ``--approval-mode default``
(headless, every tool that would ask is left out); ``edit`` is ``auto_edit``
plus a policy file (``--policy``) allowing ``run_shell_command``; ``full`` is
``yolo``. ``allow_tools`` / ``deny_tools`` become policy rules. A denied call
comes back as a ``tool_result`` with ``status: error`` and an error type
(``tool_not_registered`` for a tool the mode left out, ``policy_violation``,
``permission_denied``, ``path_not_in_workspace``): a ``permission_denied`` event.
Headless runs need a trusted folder: ``--skip-trust`` (the operator chose the
directory). Gateway: ``GOOGLE_GEMINI_BASE_URL``. Gemini CLI 0.61.0 then picks
a "gateway" auth type that its own check rejects ("Invalid auth method
selected", exit 41) unless the user's settings select one: set
``security.auth.selectedType: gemini-api-key`` in ``~/.gemini/settings.json``
(docs/providers.md). Animus does not write that file for the operator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from animus.plugins.providers.cli_process import positional, probe_version
from animus.plugins.providers.launch import Launch
from animus.state.files import atomic_json
from animus.workflow.mcp_render import gemini_mcp_settings
from animus.workflow.mcp_servers import McpServer
from animus.workflow.permissions import AgentPermissions
from animus.plugins.providers.events import (
    EnvVar,
    Final,
    JsonLineParser,
    ProviderError,
    ProviderEvent,
    RunResult,
    SessionStarted,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
    as_dict,
    as_int,
    as_str,
)

__all__ = [
    "NAME",
    "StreamParser",
    "build_argv",
    "env_required",
    "install_hint",
    "launch",
    "parse_json_output",
    "version",
]

NAME = "gemini"
install_hint = "npm install -g @google/gemini-cli"
env_required: tuple[EnvVar, ...] = (
    EnvVar("GEMINI_API_KEY", "Gemini API key (not needed after a Google login)"),
    EnvVar("GOOGLE_API_KEY", "Vertex AI API key"),
    EnvVar(
        "GOOGLE_CLOUD_PROJECT", "Google Cloud project for Vertex AI / Code Assist", sensitive=False
    ),
    EnvVar("GOOGLE_GENAI_USE_VERTEXAI", "set to true to use Vertex AI", sensitive=False),
    EnvVar("GOOGLE_GEMINI_BASE_URL", "a Gemini API-compatible endpoint or gateway", sensitive=False),
    EnvVar("GEMINI_CLI_HOME", "where Gemini CLI keeps settings and sessions", sensitive=False),
)
_APPROVAL = {"read-only": "default", "edit": "auto_edit", "full": "yolo"}
_DENIED = frozenset({"tool_not_registered", "policy_violation", "permission_denied", "path_not_in_workspace"})


def _rule(tool: str, decision: str) -> str:
    return f"[[rule]]\ntoolName = {json.dumps(tool)}\ndecision = \"{decision}\"\npriority = 900\n"


def launch(permissions: AgentPermissions, env: Mapping[str, str], scratch: Path,
           servers: Sequence[McpServer] = ()) -> Launch:
    args = ["--skip-trust", "--approval-mode", _APPROVAL[permissions.mode]]
    rules = [_rule(t, "allow") for t in permissions.allow_tools]
    rules += [_rule(t, "deny") for t in permissions.deny_tools]
    if permissions.mode == "edit" and "run_shell_command" not in permissions.deny_tools:
        rules.append(_rule("run_shell_command", "allow"))
    scratch.mkdir(parents=True, exist_ok=True)
    if rules:
        policy = scratch / "animus-policy.toml"
        policy.write_text("\n".join(rules), encoding="utf-8")
        args += ["--policy", str(policy)]
    if not servers:
        return Launch(tuple(args))
    # only these servers (the user's own stay out), and their tools allowed (policy priority below 900,
    # so deny_tools such as mcp_animus_workflow_run still win)
    args += ["--allowed-mcp-server-names", ",".join(s.name for s in servers)]
    return Launch(tuple(args), {"GEMINI_CLI_HOME": str(_home_with_servers(env, scratch, servers))})


def _home_with_servers(env: Mapping[str, str], scratch: Path, servers: Sequence[McpServer]) -> Path:
    """A ``GEMINI_CLI_HOME`` for this run whose ``settings.json`` is the user's plus the run's servers.

    Gemini CLI reads MCP servers from settings only, and takes system settings only from root-owned
    paths, so the run gets a home of its own: each entry of the user's ``.gemini`` but ``settings.json``
    is linked into it, so logins, history and sessions (``tmp/``, which ``--resume`` reads) stay the user's.
    """
    home = Path(env.get("GEMINI_CLI_HOME") or env.get("HOME") or Path.home())
    theirs, ours = home / ".gemini", scratch / "gemini-home" / ".gemini"
    settings: Any = {}
    if (theirs / "settings.json").is_file():
        try:
            settings = json.loads((theirs / "settings.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot add the run's MCP servers to {theirs / 'settings.json'}: {exc} (fix: make it "
                             "plain JSON without comments, or remove mcp_servers from the agent profile)") from None
    (theirs / "tmp").mkdir(parents=True, exist_ok=True)  # sessions land in the user's home from the first run on
    ours.mkdir(parents=True, exist_ok=True)
    for entry in theirs.iterdir():
        if entry.name != "settings.json":
            (ours / entry.name).symlink_to(entry)
    if (home / ".agents").exists():
        (ours.parent / ".agents").symlink_to(home / ".agents")
    merged = (settings if isinstance(settings, dict) else {}) | gemini_mcp_settings(servers)
    atomic_json(ours / "settings.json", merged, mode=0o600)  # a server's env may hold its tokens
    return ours.parent


def build_argv(
    binary: str,
    prompt: str,
    model: str | None,
    session_id: str | None = None,
    system_prompt: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    text = f"{system_prompt}\n\n{prompt}" if system_prompt else prompt
    argv = [binary, "--output-format", "stream-json"]
    if model:
        argv += ["--model", model]
    if session_id:
        argv += ["--resume", session_id]
    return argv + list(extra_args) + ["--prompt", positional(text)]


def _usage(stats: dict[str, Any]) -> Usage:
    return Usage(as_int(stats.get("input_tokens")), as_int(stats.get("output_tokens")), None)


@dataclass
class StreamParser(JsonLineParser):
    provider: ClassVar[str] = NAME
    saw_result: bool = False
    current_text: str = ""
    last_error: str | None = None

    def on_object(self, obj: dict[str, Any]) -> list[ProviderEvent]:
        kind = obj.get("type")
        if kind == "init" and (sid := as_str(obj.get("session_id"))):
            return [SessionStarted(sid, as_str(obj.get("model")))]
        if kind == "message":
            if obj.get("role") != "assistant" or not isinstance(obj.get("content"), str):
                return []
            text = obj["content"]
            # delta=true chunks append; a non-delta message is a whole message
            self.current_text = self.current_text + text if obj.get("delta") else text
            return [TextDelta(text)] if text else []
        if kind == "tool_use":
            self.current_text = ""
            name, tool_id = str(obj.get("tool_name", "")), str(obj.get("tool_id", ""))
            return [ToolCall(name, as_dict(obj.get("parameters")), tool_id)]
        if kind == "tool_result":
            failed = obj.get("status") == "error"
            output = obj.get("output")
            error = as_dict(obj.get("error"))
            if failed and not isinstance(output, str):
                output = error.get("message", "")
            tool_id = str(obj.get("tool_id", ""))
            out: list[ProviderEvent] = [ToolResult(tool_id, str(output or ""), failed)]
            if failed and error.get("type") in _DENIED:
                out.insert(0, self.denied(tool_id, "", str(error.get("message") or output or "denied")))
            return out
        if kind == "error":
            if obj.get("severity") == "error":
                self.last_error = as_str(obj.get("message")) or self.last_error
            return []
        if kind == "result":
            return self._result(obj)
        return []

    def _result(self, obj: dict[str, Any]) -> list[ProviderEvent]:
        self.saw_result = True
        out: list[ProviderEvent] = [_usage(as_dict(obj.get("stats")))]
        if obj.get("status") == "success":
            out.append(Final(self.current_text))
            return out
        error = as_dict(obj.get("error"))
        message = as_str(error.get("message")) or self.last_error or "run failed"
        if error.get("type") == "FatalTurnLimitedError":
            out.append(ProviderError(f"gemini: {message}", retryable=False))
        else:
            out.append(self.error_or_rate_limit(f"gemini: {message}"))
        return out

    def completed(self, exit_code: int | None) -> bool:
        return self.saw_result

    def finish(self, exit_code: int | None) -> RunResult:
        if not self.saw_result and self.last_error and self.error is None:
            self.record(self.error_or_rate_limit(f"gemini: {self.last_error}"))
        return super().finish(exit_code)


def parse_json_output(
    text: str, exit_code: int | None = 0, clock: Callable[[], float] = time.time
) -> RunResult:
    """Read ``--output-format json``: one (pretty-printed) object printed at exit."""
    parser = StreamParser(clock=clock)
    start = text.find("{")  # banners such as "Loaded cached credentials." may come first
    try:
        obj = json.loads(text[start:]) if start != -1 else None
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        parser.ignored_lines += 1
        return parser.finish(exit_code)
    if sid := as_str(obj.get("session_id")):
        parser.record(SessionStarted(sid, None))
    stats = as_dict(obj.get("stats"))
    models = as_dict(stats.get("models"))
    tokens = [as_dict(as_dict(m).get("tokens")) for m in models.values()]
    parser.record(
        Usage(
            sum(as_int(t.get("prompt")) for t in tokens),
            sum(as_int(t.get("candidates")) for t in tokens),
        )
    )
    error = as_dict(obj.get("error"))
    if error:
        parser.record(
            parser.error_or_rate_limit(f"gemini: {as_str(error.get('message')) or 'run failed'}")
        )
    else:
        parser.saw_result = True
        parser.record(Final(str(obj.get("response") or "")))
    return parser.finish(exit_code)


def version(binary: str) -> str | None:
    return probe_version(binary)
