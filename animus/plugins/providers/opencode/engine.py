"""opencode: ``opencode run --format json <prompt>`` (``--session <id>`` to resume).

Stream shape (sst/opencode ``packages/opencode/src/cli/cmd/run.ts``, ``emit()``):
every line is ``{type, timestamp (ms), sessionID, part|error}`` with type
``step_start``, ``text`` (a finished text part), ``tool_use`` (a finished tool
part: ``tool``, ``callID``, ``state{status completed|error, input, output|error}``),
``step_finish`` (``reason``, ``cost``, ``tokens{input, output, reasoning,
cache{read, write}}``), ``reasoning`` (only with ``--thinking``) and ``error``
(``error{name, data{message, statusCode?, responseHeaders?}}``).

There is **no terminal event**: the run succeeded iff the process exited 0 and
no ``error`` line appeared. A single ``tool_use`` line carries the whole tool
output and routinely exceeds 64 KiB.

The final text is the text of the last step that produced any; cost and
tokens are summed over steps. opencode has no system-prompt flag, so a system
prompt is prepended to the message.

Permissions (opencode 1.18.33) go in ``OPENCODE_PERMISSION`` (its
``permission`` config as JSON): ``read-only`` asks for every edit and for
every shell command but a few read-only ones; ``edit`` allows edits and the
shell, and asks before touching files outside the project
(``external_directory``); ``full`` allows all. ``opencode run`` answers every
ask with a rejection ("permission requested: ...; auto-rejecting" on stderr),
the tool part ends ``status: error`` with "The user rejected permission to use
this specific tool call.", and the run stops: a ``permission_denied`` event.
opencode reads its directory from ``$PWD`` (the plugin sets it to the run's cwd).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from animus.plugins.providers.cli_process import positional, probe_version
from animus.plugins.providers.launch import Launch
from animus.workflow.mcp_render import opencode_mcp_config
from animus.workflow.mcp_servers import McpServer
from animus.workflow.permissions import AgentPermissions
from animus.plugins.providers.events import (
    EnvVar,
    Final,
    JsonLineParser,
    ProviderEvent,
    RateLimited,
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

__all__ = ["NAME", "StreamParser", "build_argv", "env_required", "install_hint", "launch", "version"]

NAME = "opencode"
install_hint = "npm install -g opencode-ai"
env_required: tuple[EnvVar, ...] = (
    EnvVar("ANTHROPIC_API_KEY", "key for anthropic/* models (or `opencode auth login`)"),
    EnvVar("OPENAI_API_KEY", "key for openai/* models"),
    EnvVar("OPENROUTER_API_KEY", "key for openrouter/* models"),
    EnvVar("OPENCODE_CONFIG", "path to an opencode.json config", sensitive=False),
    EnvVar("OPENCODE_CONFIG_CONTENT", "an opencode config as JSON (providers with a baseURL, keys)"),
    EnvVar("OPENCODE_DISABLE_MODELS_FETCH", "set to 1 offline: no models.dev fetch", sensitive=False),
    EnvVar("OPENCODE_DISABLE_AUTOUPDATE", "set to 1 to keep opencode from updating itself", sensitive=False),
)
_READ_ONLY_COMMANDS = ("ls*", "cat *", "head *", "tail *", "grep *", "rg *", "find *", "wc *",
                       "git status*", "git diff*", "git log*", "git show*")
_REJECTED = "rejected permission"


def _permission(permissions: AgentPermissions, servers: Sequence[McpServer] = ()) -> dict[str, Any]:
    if permissions.mode == "read-only":
        bash: Any = {"*": "ask"} | {c: "allow" for c in _READ_ONLY_COMMANDS}
        rules: dict[str, Any] = {"edit": "ask", "bash": bash, "webfetch": "ask", "external_directory": "ask"}
    elif permissions.mode == "edit":
        rules = {"edit": "allow", "bash": "allow", "webfetch": "ask", "external_directory": "ask"}
    else:
        rules = {"edit": "allow", "bash": "allow", "webfetch": "allow", "external_directory": "allow"}
    rules |= {f"{s.name}_*": "allow" for s in servers}  # the profile named them; its lists below may narrow
    return rules | {t: "allow" for t in permissions.allow_tools} | {t: "deny" for t in permissions.deny_tools}


def launch(permissions: AgentPermissions, env: Mapping[str, str], scratch: Path,
           servers: Sequence[McpServer] = ()) -> Launch:
    """``OPENCODE_PERMISSION``; the run's MCP servers are merged into the user's ``OPENCODE_CONFIG_CONTENT``."""
    out = {"OPENCODE_PERMISSION": json.dumps(_permission(permissions, servers))}
    if servers:
        out["OPENCODE_CONFIG_CONTENT"] = json.dumps(_with_servers(env.get("OPENCODE_CONFIG_CONTENT"), servers))
    return Launch((), out)


def _with_servers(content: str | None, servers: Sequence[McpServer]) -> dict[str, Any]:
    try:
        config = json.loads(content) if content else {}
    except ValueError as exc:
        raise ValueError(f"OPENCODE_CONFIG_CONTENT is not JSON ({exc}), so the run's MCP servers cannot be "
                         "added to it (fix: make it one JSON object)") from None
    if not isinstance(config, dict):
        raise ValueError("OPENCODE_CONFIG_CONTENT is not a JSON object (fix: make it one JSON object)")
    ours = opencode_mcp_config(servers)
    return config | {"mcp": {**(config.get("mcp") or {}), **ours["mcp"]},
                     "tools": {**(config.get("tools") or {}), **ours.get("tools", {})}}


def build_argv(
    binary: str,
    prompt: str,
    model: str | None,
    session_id: str | None = None,
    system_prompt: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """``model`` is ``provider/model``, as opencode expects."""
    text = f"{system_prompt}\n\n{prompt}" if system_prompt else prompt
    argv = [binary, "run", "--format", "json"]
    if model:
        argv += ["--model", model]
    if session_id:
        argv += ["--session", session_id]
    return argv + list(extra_args) + [positional(text)]


@dataclass
class StreamParser(JsonLineParser):
    provider: ClassVar[str] = NAME
    step_text: str = ""
    last_step_text: str = ""

    def on_object(self, obj: dict[str, Any]) -> list[ProviderEvent]:
        out: list[ProviderEvent] = []
        sid = as_str(obj.get("sessionID"))
        if sid and self.session_id is None:
            out.append(SessionStarted(sid, self.model))
        kind, part = obj.get("type"), as_dict(obj.get("part"))
        if kind == "step_start":
            self.step_text = ""
        elif kind == "text" and isinstance(part.get("text"), str):
            self.step_text += part["text"]
            out.append(TextDelta(part["text"]))
        elif kind == "tool_use":
            out.extend(self._tool(part))
        elif kind == "step_finish":
            out.append(self._step_finish(part))
        elif kind == "error":
            out.append(self._error(as_dict(obj.get("error"))))
        return out

    def _tool(self, part: dict[str, Any]) -> list[ProviderEvent]:
        state = as_dict(part.get("state"))
        call_id = str(part.get("callID") or part.get("id") or "")
        call = ToolCall(str(part.get("tool", "")), as_dict(state.get("input")), call_id)
        if state.get("status") == "error":
            error = str(state.get("error") or "")
            out: list[ProviderEvent] = [call, ToolResult(call_id, error, True)]
            if _REJECTED in error:
                self.record(call)
                out.append(self.denied(call_id, call.name, error))
            return out
        output = state.get("output")
        text = (
            output if isinstance(output, str) else json.dumps(output) if output is not None else ""
        )
        return [call, ToolResult(call_id, text, False)]

    def _step_finish(self, part: dict[str, Any]) -> Usage:
        if self.step_text:
            self.last_step_text = self.step_text
        tokens = as_dict(part.get("tokens"))
        cache = as_dict(tokens.get("cache"))
        cost = part.get("cost")
        return Usage(
            input_tokens=as_int(tokens.get("input"))
            + as_int(cache.get("read"))
            + as_int(cache.get("write")),
            output_tokens=as_int(tokens.get("output")) + as_int(tokens.get("reasoning")),
            cost_usd=float(cost)
            if isinstance(cost, (int, float)) and not isinstance(cost, bool)
            else None,
        )

    def _error(self, error: dict[str, Any]) -> ProviderEvent:
        data = as_dict(error.get("data"))
        name = as_str(error.get("name")) or "Error"
        message = f"opencode: {name}: {as_str(data.get('message')) or name}"
        if data.get("statusCode") == 429:
            retry_after = as_dict(data.get("responseHeaders")).get("retry-after")
            seconds = as_int(retry_after) if retry_after is not None else 0
            return RateLimited(self.clock() + seconds if seconds else None, message)
        retryable = data.get("isRetryable")
        return self.error_or_rate_limit(message, retryable if isinstance(retryable, bool) else None)

    def completed(self, exit_code: int | None) -> bool:
        return exit_code == 0

    def finish(self, exit_code: int | None) -> RunResult:
        final = self.step_text or self.last_step_text
        if exit_code == 0 and self.error is None and self.rate_limit is None:
            self.record(Final(final))
        else:
            self.final_text = final
        return super().finish(exit_code)


def version(binary: str) -> str | None:
    return probe_version(binary)
