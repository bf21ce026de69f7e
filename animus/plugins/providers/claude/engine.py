"""Claude Code: ``claude -p <prompt> --output-format stream-json --verbose``.

Stream shape (docs: code.claude.com/docs/en/headless; Agent SDK message types):
``system``/``init`` carries ``session_id`` and ``model``; ``assistant`` messages
hold content blocks (``text``, ``tool_use``); ``user`` messages carry
``tool_result`` blocks; the last line is ``result`` with ``result`` (final text),
``is_error``, ``subtype``, ``total_cost_usd``, ``usage`` and ``session_id``.
``rate_limit_event`` lines report quota state; ``status: rejected`` means the
run is blocked until ``resetsAt`` (epoch seconds).

``--verbose`` is not optional: without it ``-p`` with ``stream-json`` refuses
to run. A run succeeded only if a ``result`` line said so.

Permissions (checked against Claude Code 2.1.332 run as root, which refuses
``--dangerously-skip-permissions`` and ``--permission-mode bypassPermissions``):
``read-only`` is ``--permission-mode default`` (reads and read-only commands
inside the working directory; every edit needs an approval nobody can give
in ``-p``, so it is denied), ``edit`` is ``acceptEdits`` (edits, and shell
commands that only touch files inside the working directory), ``full`` adds
``--allowedTools`` for every built-in tool. A denial is a ``system`` /
``permission_denied`` line (``tool_name``, ``tool_use_id``, ``message``)
followed by an ``is_error`` tool result; the ``result`` line lists them again
under ``permission_denials``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from animus.plugins.providers.cli_process import positional, probe_version
from animus.plugins.providers.launch import Launch
from animus.state.files import atomic_json
from animus.workflow.mcp_render import claude_mcp
from animus.workflow.mcp_servers import McpServer
from animus.workflow.permissions import AgentPermissions
from animus.plugins.providers.events import (
    EnvVar,
    PermissionDenied,
    Final,
    JsonLineParser,
    ProviderError,
    ProviderEvent,
    RateLimited,
    SessionStarted,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
    as_dict,
    as_int,
    as_str,
    summarize_input,
)

__all__ = ["NAME", "StreamParser", "build_argv", "env_required", "install_hint", "launch", "version"]

NAME = "claude"
install_hint = "npm install -g @anthropic-ai/claude-code"
env_required: tuple[EnvVar, ...] = (
    EnvVar("ANTHROPIC_API_KEY", "Anthropic API key (not needed after `claude login`)"),
    EnvVar("CLAUDE_CODE_OAUTH_TOKEN", "long-lived subscription token from `claude setup-token`"),
    EnvVar("CLAUDE_CONFIG_DIR", "where Claude Code keeps sessions and login", sensitive=False),
    EnvVar("ANTHROPIC_BASE_URL", "an Anthropic-compatible endpoint or gateway", sensitive=False),
    EnvVar("ANTHROPIC_AUTH_TOKEN", "bearer token for a gateway (instead of an API key)"),
    EnvVar(
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "set to 1 to keep Claude Code off telemetry and update checks",
        sensitive=False,
    ),
)
_ALL_TOOLS = ("Bash", "Edit", "Write", "NotebookEdit", "WebFetch", "WebSearch")


def launch(permissions: AgentPermissions, env: Mapping[str, str], scratch: Path,
           servers: Sequence[McpServer] = ()) -> Launch:
    """``--permission-mode`` plus allowed / disallowed tool rules; never a root-refused flag.

    The run's MCP servers go in a file of their own with ``--strict-mcp-config``,
    always (an empty one too), so the user's own servers never join a run; their
    tools are allowed (``mcp__<server>`` or ``mcp__<server>__<tool>``), and
    ``deny_tools`` can still name one (Claude's deny rules win over allow rules).
    """
    mcp = claude_mcp(servers)
    config = scratch / "mcp.json"
    atomic_json(config, mcp.config, mode=0o600)  # a server's env may hold its tokens
    mode = {"read-only": "default", "edit": "acceptEdits", "full": "acceptEdits"}[permissions.mode]
    args = [*mcp.argv(str(config)), "--permission-mode", mode]  # --mcp-config is variadic: a flag follows
    allow = (_ALL_TOOLS if permissions.mode == "full" else ()) + permissions.allow_tools + mcp.allowed_tools
    if allow:
        args += ["--allowedTools", *allow]
    if permissions.deny_tools:
        args += ["--disallowedTools", *permissions.deny_tools]
    return Launch(tuple(args))


def build_argv(
    binary: str,
    prompt: str,
    model: str | None,
    session_id: str | None = None,
    system_prompt: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Resume is Claude's own ``--resume <id>``; the system prompt is appended to Claude's.

    ``extra_args`` may end in a variadic ``--allowedTools`` list, so the prompt
    goes first, after ``-p``.
    """
    argv = [binary, "-p", positional(prompt), "--output-format", "stream-json", "--verbose"]
    if model:
        argv += ["--model", model]
    if session_id:
        argv += ["--resume", session_id]
    if system_prompt:
        argv += ["--append-system-prompt", system_prompt]
    return argv + list(extra_args)


def _text_of(content: Any) -> str:
    """tool_result content is a string or a list of blocks; keep the text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        ]
        return "\n".join(p for p in parts if isinstance(p, str))
    return "" if content is None else json.dumps(content)


@dataclass
class StreamParser(JsonLineParser):
    provider: ClassVar[str] = NAME
    saw_result: bool = False

    def on_object(self, obj: dict[str, Any]) -> list[ProviderEvent]:
        kind = obj.get("type")
        if kind == "system":
            sid = as_str(obj.get("session_id"))
            if obj.get("subtype") == "init" and sid:
                return [SessionStarted(sid, as_str(obj.get("model")))]
            if obj.get("subtype") == "permission_denied":
                message = as_str(obj.get("message")) or as_str(obj.get("decision_reason")) or "denied"
                tool = as_str(obj.get("tool_name")) or ""
                return [self.denied(str(obj.get("tool_use_id") or ""), tool, message)]
            return []
        if kind == "assistant":
            return self._assistant(as_dict(obj.get("message")))
        if kind == "user":
            return self._tool_results(as_dict(obj.get("message")))
        if kind == "rate_limit_event":
            return self._rate_limit(as_dict(obj.get("rate_limit_info")))
        if kind == "result":
            return self._result(obj)
        return []

    def _assistant(self, message: dict[str, Any]) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        for block in message.get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                out.append(TextDelta(block["text"]))
            elif block.get("type") == "tool_use":
                out.append(
                    ToolCall(
                        str(block.get("name", "")),
                        as_dict(block.get("input")),
                        str(block.get("id", "")),
                    )
                )
        return out

    def _tool_results(self, message: dict[str, Any]) -> list[ProviderEvent]:
        content = message.get("content")
        if not isinstance(content, list):
            return []
        return [
            ToolResult(
                str(b.get("tool_use_id", "")), _text_of(b.get("content")), bool(b.get("is_error"))
            )
            for b in content
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]

    def _rate_limit(self, info: dict[str, Any]) -> list[ProviderEvent]:
        if info.get("status") != "rejected":
            return []  # "allowed" / "allowed_warning" are informational
        reset = info.get("resetsAt")
        reset_at = None
        if isinstance(reset, (int, float)) and not isinstance(reset, bool):
            reset_at = reset / 1000.0 if reset > 10**11 else float(reset)
        window = as_str(info.get("rateLimitType")) or "usage"
        return [RateLimited(reset_at, f"claude {window} limit reached")]

    def _late_denials(self, listed: Any) -> list[ProviderEvent]:
        """``result.permission_denials`` entries no ``system`` line announced (older CLIs)."""
        seen = {d.id for d in self.denials}
        out: list[ProviderEvent] = []
        for item in listed if isinstance(listed, list) else []:
            entry = as_dict(item)
            tool_id = str(entry.get("tool_use_id") or "")
            if tool_id and tool_id not in seen:
                tool = as_str(entry.get("tool_name")) or ""
                denial = self.denied(tool_id, tool, "denied by the permission settings")
                if not denial.input:
                    denial = PermissionDenied(tool, summarize_input(as_dict(entry.get("tool_input"))),
                                              denial.message, tool_id)
                out.append(denial)
        return out

    def _result(self, obj: dict[str, Any]) -> list[ProviderEvent]:
        self.saw_result = True
        self.session_id = self.session_id or as_str(obj.get("session_id"))
        usage = as_dict(obj.get("usage"))
        cost = obj.get("total_cost_usd")
        out: list[ProviderEvent] = self._late_denials(obj.get("permission_denials"))
        out += [
            Usage(
                input_tokens=as_int(usage.get("input_tokens"))
                + as_int(usage.get("cache_creation_input_tokens"))
                + as_int(usage.get("cache_read_input_tokens")),
                output_tokens=as_int(usage.get("output_tokens")),
                cost_usd=float(cost)
                if isinstance(cost, (int, float)) and not isinstance(cost, bool)
                else None,
            )
        ]
        text = as_str(obj.get("result")) or ""
        subtype = as_str(obj.get("subtype")) or "unknown"
        if not obj.get("is_error") and subtype == "success":
            out.append(Final(text))
        elif self.rate_limit is None:
            if obj.get("api_error_status") == 429:
                out.append(RateLimited(None, f"claude: {text or 'rate limited (429)'}"))
            elif subtype.startswith("error_max"):
                turns = as_int(obj.get("num_turns"))
                out.append(
                    ProviderError(f"claude stopped: {subtype} after {turns} turns", retryable=False)
                )
            else:
                out.append(self.error_or_rate_limit(f"claude: {text or subtype}"))
        return out

    def completed(self, exit_code: int | None) -> bool:
        return self.saw_result


def version(binary: str) -> str | None:
    return probe_version(binary)
