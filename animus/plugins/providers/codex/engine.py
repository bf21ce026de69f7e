"""OpenAI Codex CLI: ``codex exec --json <prompt>`` and ``codex exec --json resume <id> <prompt>``.

Stream shape (openai/codex ``codex-rs/exec/src/exec_events.rs``): ``thread.started``
(``thread_id``, the id ``exec resume`` takes), ``turn.started``,
``item.started|updated|completed`` with typed items (``agent_message``,
``reasoning``, ``command_execution``, ``file_change``, ``mcp_tool_call``,
``web_search``, ``todo_list``, ``error``), then ``turn.completed`` with
``usage{input_tokens, cached_input_tokens, output_tokens}`` or ``turn.failed``.

A top-level ``error`` line is *not* terminal (codex reports reconnect attempts
that way and may still complete the turn); it is remembered and used only if
the turn fails or the stream ends without ``turn.completed``. Codex reports no
cost. ``cached_input_tokens`` is a subset of ``input_tokens`` (OpenAI
accounting), so input is ``input_tokens`` alone.

Codex has no system-prompt flag; a system prompt is prepended to the prompt.

Permissions are Codex's sandbox (Landlock/seccomp; works as root), approvals
never asked (``approval_policy="never"``): ``read-only`` is ``--sandbox
read-only``; ``edit`` is ``workspace-write`` with ``/tmp`` and ``$TMPDIR`` taken
out of its writable roots, so only the working directory is writable; ``full``
is ``danger-full-access``. Codex has no per-tool rules: ``allow_tools`` /
``deny_tools`` are refused with a clear error rather than ignored. Known limit
(Codex 0.171.0): a command the sandbox refuses shows in ``--json`` output as
nothing at all (no ``command_execution`` item), so denials cannot be reported
for Codex; the phase still fails if it changed nothing (the provider compares
the working directory before and after) only when a denial was seen, so a
denied Codex write surfaces as the agent's own account of it.

Gateway: with ``OPENAI_BASE_URL`` set, the run gets a ``model_providers.animus``
entry (that base URL, Responses wire API, key from ``OPENAI_API_KEY``), which
is how Codex talks to a non-default endpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from animus.plugins.providers.cli_process import positional, probe_version
from animus.plugins.providers.launch import Launch
from animus.workflow.mcp_render import codex_mcp_override
from animus.workflow.mcp_servers import McpServer
from animus.workflow.permissions import AgentPermissions
from animus.plugins.providers.events import (
    EnvVar,
    Final,
    PermissionDenied,
    JsonLineParser,
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
    summarize_input,
)

__all__ = [
    "NAME",
    "StreamParser",
    "build_argv",
    "env_required",
    "install_hint",
    "launch",
    "post_run",
    "version",
]
_SANDBOX_REFUSAL = re.compile(r"Read-only file system|Operation not permitted|Permission denied")

NAME = "codex"
install_hint = "npm install -g @openai/codex"
env_required: tuple[EnvVar, ...] = (
    EnvVar("OPENAI_API_KEY", "OpenAI API key (not needed after `codex login`)"),
    EnvVar("CODEX_API_KEY", "API key read by `codex exec` only"),
    EnvVar("CODEX_HOME", "where Codex keeps config, login and sessions", sensitive=False),
    EnvVar("OPENAI_BASE_URL", "an OpenAI Responses-compatible endpoint or gateway", sensitive=False),
)
_SANDBOX = {"read-only": "read-only", "edit": "workspace-write", "full": "danger-full-access"}


def launch(permissions: AgentPermissions, env: Mapping[str, str], scratch: Path,
           servers: Sequence[McpServer] = ()) -> Launch:
    """The sandbox flags; the run's MCP servers replace ``mcp_servers`` for this run (``-c``), so
    the user's own ``config.toml`` servers stay out of it. Per-tool rules exist only for MCP
    tools: ``deny_tools: [mcp__<server>__<tool>]`` turns that tool off (``disabled_tools``)."""
    disabled: dict[str, list[str]] = {}
    for rule in (*permissions.allow_tools, *permissions.deny_tools):
        server = next((s.name for s in servers if rule.startswith(f"mcp__{s.name}__")), None)
        if server is None:
            raise ValueError(
                f"codex has no per-tool permissions but for the run's MCP tools (mcp__<server>__<tool>), got "
                f"{rule!r}: remove it from this agent's allow_tools/deny_tools (codex takes mode: read-only, "
                "edit or full)")
        if rule in permissions.deny_tools:  # an allowed MCP tool needs nothing: the server's tools are approved
            disabled.setdefault(server, []).append(rule.removeprefix(f"mcp__{server}__"))
    args = ["--sandbox", _SANDBOX[permissions.mode], "-c", 'approval_policy="never"']
    if permissions.mode == "edit":
        args += ["-c", "sandbox_workspace_write.exclude_slash_tmp=true",
                 "-c", "sandbox_workspace_write.exclude_tmpdir_env_var=true"]
    base_url = env.get("OPENAI_BASE_URL")
    if base_url:
        entry = (f"{{name=\"animus\",base_url={json.dumps(base_url)},env_key=\"OPENAI_API_KEY\","
                 "wire_api=\"responses\"}")
        args += ["-c", f"model_providers.animus={entry}", "-c", 'model_provider="animus"']
    return Launch((*args, "-c", codex_mcp_override(servers, disabled)))


def build_argv(
    binary: str,
    prompt: str,
    model: str | None,
    session_id: str | None = None,
    system_prompt: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Flags go before ``resume``: ``--json`` and ``--model`` are global to ``exec``."""
    text = f"{system_prompt}\n\n{prompt}" if system_prompt else prompt
    argv = [binary, "exec", "--json", "--skip-git-repo-check"]
    if model:
        argv += ["--model", model]
    argv += list(extra_args)
    if session_id:
        argv += ["resume", session_id]
    return argv + [positional(text)]


def _call(item: dict[str, Any]) -> ToolCall | None:
    kind, item_id = item.get("type"), str(item.get("id", ""))
    if kind == "command_execution":
        return ToolCall("shell", {"command": item.get("command", "")}, item_id)
    if kind == "file_change":
        return ToolCall("apply_patch", {"changes": item.get("changes") or []}, item_id)
    if kind == "web_search":
        return ToolCall("web_search", {"query": item.get("query", "")}, item_id)
    if kind == "mcp_tool_call":
        name = f"{item.get('server', '')}.{item.get('tool', '')}"
        return ToolCall(name, as_dict(item.get("arguments")), item_id)
    return None


def _result(item: dict[str, Any]) -> ToolResult | None:
    kind, item_id, status = item.get("type"), str(item.get("id", "")), item.get("status")
    failed = status in ("failed", "declined")
    if kind == "command_execution":
        code = item.get("exit_code")
        bad = failed or (isinstance(code, int) and code != 0)
        return ToolResult(item_id, str(item.get("aggregated_output") or ""), bad)
    if kind == "file_change":
        paths = ", ".join(str(as_dict(c).get("path", "")) for c in item.get("changes") or [])
        return ToolResult(item_id, paths, failed)
    if kind == "web_search":
        return ToolResult(item_id, "", failed)
    if kind == "mcp_tool_call":
        if failed:
            return ToolResult(item_id, str(as_dict(item.get("error")).get("message", "")), True)
        return ToolResult(
            item_id, json.dumps(as_dict(item.get("result")).get("content") or []), False
        )
    return None


@dataclass
class StreamParser(JsonLineParser):
    provider: ClassVar[str] = NAME
    turn_completed: bool = False
    turn_failed: bool = False
    last_message: str = ""
    last_error: str | None = None
    started_items: set[str] | None = None

    def on_object(self, obj: dict[str, Any]) -> list[ProviderEvent]:
        kind = obj.get("type")
        if kind == "thread.started" and (tid := as_str(obj.get("thread_id"))):
            return [SessionStarted(tid, self.model)]
        if kind == "item.started":
            return self._started(as_dict(obj.get("item")))
        if kind == "item.completed":
            return self._completed(as_dict(obj.get("item")))
        if kind == "turn.completed":
            self.turn_completed = True
            usage = as_dict(obj.get("usage"))
            return [
                Usage(as_int(usage.get("input_tokens")), as_int(usage.get("output_tokens")), None),
                Final(self.last_message),
            ]
        if kind == "turn.failed":
            self.turn_failed = True
            message = (
                as_str(as_dict(obj.get("error")).get("message")) or self.last_error or "turn failed"
            )
            return [self.error_or_rate_limit(f"codex: {message}")]
        if kind == "error":
            self.last_error = as_str(obj.get("message")) or self.last_error
        return []

    def _started(self, item: dict[str, Any]) -> list[ProviderEvent]:
        call = _call(item)
        if call is None:
            return []
        if self.started_items is None:
            self.started_items = set()
        self.started_items.add(call.id)
        return [call]

    def _completed(self, item: dict[str, Any]) -> list[ProviderEvent]:
        if item.get("type") == "agent_message":
            self.last_message = str(item.get("text") or "")
            return [TextDelta(self.last_message)] if self.last_message else []
        out: list[ProviderEvent] = []
        call = _call(item)
        if call is not None and call.id not in (self.started_items or set()):
            out.append(call)  # file changes arrive completed without a start
        result = _result(item)
        if result is not None:
            out.append(result)
        return out

    def completed(self, exit_code: int | None) -> bool:
        return self.turn_completed

    def finish(self, exit_code: int | None) -> RunResult:
        if not (self.turn_completed or self.turn_failed) and self.last_error and self.error is None:
            self.record(self.error_or_rate_limit(f"codex: {self.last_error}"))
        return super().finish(exit_code)


def _rollout(env: Mapping[str, str], thread_id: str) -> Path | None:
    home = Path(env.get("CODEX_HOME") or Path(env.get("HOME") or Path.home()) / ".codex")
    found = sorted((home / "sessions").glob(f"*/*/*/rollout-*-{thread_id}.jsonl"), key=os.path.getmtime)
    return found[-1] if found else None


def sandbox_denials(lines: Sequence[str]) -> list[PermissionDenied]:
    """Tool outputs in a rollout that the sandbox refused, with the call that asked."""
    calls: dict[str, dict[str, Any]] = {}
    out: list[PermissionDenied] = []
    for line in lines:
        try:
            payload = as_dict(as_dict(json.loads(line)).get("payload"))
        except ValueError:
            continue
        call_id = str(payload.get("call_id") or "")
        if payload.get("type") == "function_call":
            calls[call_id] = payload
        elif payload.get("type") == "function_call_output" and isinstance(payload.get("output"), str):
            refusal = _SANDBOX_REFUSAL.search(payload["output"])
            if refusal is None:
                continue
            call = calls.get(call_id, {})
            try:
                arguments = as_dict(json.loads(str(call.get("arguments") or "{}")))
            except ValueError:
                arguments = {}
            message = next(x for x in payload["output"].splitlines() if refusal.group(0) in x)
            out.append(PermissionDenied(str(call.get("name") or "exec_command"),
                                        summarize_input(arguments), message.strip(), call_id))
    return out


def post_run(result: RunResult, env: Mapping[str, str]) -> RunResult:
    """Add the sandbox refusals ``--json`` did not show (see the module doc)."""
    path = _rollout(env, result.session_id) if result.session_id else None
    if path is None:
        return result
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return result
    return dataclasses.replace(result, denials=result.denials + tuple(sandbox_denials(lines)))


def version(binary: str) -> str | None:
    return probe_version(binary)
