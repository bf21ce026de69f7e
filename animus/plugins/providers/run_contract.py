"""The ``agent/run`` contract of every provider: params in, decision out, events on the bus.

Pure (no processes, no sockets), so it is tested in milliseconds:

* ``RunRequest.from_params`` checks the params of ``agent/run`` / ``agent/resume``
  once and raises a JSON-RPC ``INVALID_PARAMS`` error naming the bad one;
* ``shape_result`` turns an engine's ``RunResult`` into the phase decision
  ``{verdict, reason, confidence, risk, evidence, summary, session_id, usage,
  rate_limited, error}``: a quota limit is ``verdict: None`` with
  ``rate_limited`` (the runner parks the phase), any failure, an unusable
  verdict block included, is ``verdict: "fail"`` with ``error`` saying why;
* ``bus_event`` maps an engine event to its ``agent_*`` bus event, long tool
  payloads cut to 2 KB;
* ``record_session_id`` rewrites the runner's session file atomically;
* ``confine`` keeps ``cwd`` and ``session_file`` inside the run's own
  directories (the project, ``<state>/worktrees/``, ``<state>/runs/<workflow>/``):
  anyone who can call ``agent/run`` (the HTTP transport's token, a Ray runner)
  must not be able to run an agent elsewhere or overwrite any file.

A run whose agent was denied tool uses and changed nothing in its working
directory ends ``verdict: "fail"`` with a reason naming the denials and the
fix (the reference's "explain empty edits"), never as a silent success.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animus.plugins.providers.events import (
    PermissionDenied,
    ProviderEvent,
    RateLimited,
    RunResult,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from animus.plugins.providers.verdict import VerdictError, decide, verdict_instructions
from animus.plugin_runtime import protocol as p
from animus.errors import InvalidInput
from animus.state.files import atomic_json
from animus.workflow.mcp_servers import McpServer
from animus.workflow.permissions import AgentPermissions, parse_permissions

__all__ = [
    "TOOL_OUTPUT_LIMIT",
    "RunRequest",
    "bus_event",
    "confine",
    "failed",
    "record_session_id",
    "shape_result",
    "usage_of",
]

TOOL_OUTPUT_LIMIT = 2048


def _opt_str(params: dict[str, Any], key: str) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise p.RpcError(p.INVALID_PARAMS, f"{key} must be a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class RunRequest:
    """The params of ``agent/run`` / ``agent/resume``, checked once."""

    prompt: str
    system_prompt: str | None = None
    model: str | None = None
    cwd: str | None = None
    session_id: str | None = None
    timeout: float | None = None
    allow_missing_decision: bool = True
    workflow_id: str | None = None
    run_id: str | None = None
    phase: str | None = None
    run_key: str = ""
    session_file: str | None = None
    permissions: AgentPermissions = AgentPermissions()
    task_id: str | None = None  # the run's subject, qualified: the animus MCP server's "my task"
    mcp_servers: tuple[McpServer, ...] = ()  # as the profile names them; the plugin binds them to the run

    @classmethod
    def from_params(cls, params: Any, resume: bool) -> RunRequest:
        if not isinstance(params, dict):
            raise p.RpcError(p.INVALID_PARAMS, "params must be an object")
        prompt = _opt_str(params, "prompt")
        if prompt is None:
            raise p.RpcError(p.INVALID_PARAMS, "prompt is required (a non-empty string)")
        session_id = _opt_str(params, "session_id")
        if resume and session_id is None:
            raise p.RpcError(p.INVALID_PARAMS, "agent/resume needs the session_id to continue")
        timeout = params.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise p.RpcError(
                p.INVALID_PARAMS, f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        try:
            permissions = parse_permissions(params.get("permissions"))
        except InvalidInput as exc:
            raise p.RpcError(p.INVALID_PARAMS, exc.message) from None
        allow = params.get("allow_missing_decision", True)
        if not isinstance(allow, bool):
            raise p.RpcError(p.INVALID_PARAMS, "allow_missing_decision must be true or false")
        return cls(
            prompt=prompt,
            system_prompt=_opt_str(params, "system_prompt"),
            model=_opt_str(params, "model"),
            cwd=_opt_str(params, "cwd"),
            session_id=session_id,
            timeout=float(timeout) if timeout is not None else None,
            allow_missing_decision=allow,
            workflow_id=_opt_str(params, "workflow_id"),
            run_id=_opt_str(params, "run_id"),
            phase=_opt_str(params, "phase"),
            run_key=_opt_str(params, "run_key") or uuid.uuid4().hex,
            session_file=_opt_str(params, "session_file"),
            permissions=permissions,
            task_id=_opt_str(params, "task_id"),
            mcp_servers=_servers(params.get("mcp_servers")),
        )

    def full_prompt(self) -> str:
        return f"{self.prompt}\n\n{verdict_instructions()}"

    def tags(self) -> dict[str, str | None]:
        return {"workflow_id": self.workflow_id, "run_id": self.run_id, "phase": self.phase}


def _servers(raw: Any) -> tuple[McpServer, ...]:
    """``mcp_servers``: a list of ``McpServer.to_wire()`` objects, checked by ``McpServer`` itself."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise p.RpcError(p.INVALID_PARAMS, "mcp_servers must be a list of server objects")
    try:
        return tuple(McpServer.from_wire(s) for s in raw)
    except InvalidInput as exc:
        raise p.RpcError(p.INVALID_PARAMS, f"mcp_servers: {exc.message}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise p.RpcError(p.INVALID_PARAMS, f"mcp_servers: malformed server object ({exc!r})") from None


def usage_of(result: RunResult) -> dict[str, Any]:
    return {
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
    }


def failed(reason: str) -> dict[str, Any]:
    """Not the agent's judgement: a run that could not produce one. Confidence 0, risk high."""
    return {
        "verdict": "fail",
        "reason": reason,
        "confidence": 0.0,
        "risk": "high",
        "evidence": [],
        "error": reason,
    }


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def confine(request: RunRequest, state_root: str, project_root: str) -> None:
    """Refuse (``INVALID_PARAMS``) a ``cwd`` or ``session_file`` outside the run's own directories."""
    state = Path(state_root).resolve() if state_root else None
    if request.cwd is not None:
        cwd = Path(request.cwd)
        roots = [Path(project_root).resolve()] + ([state / "worktrees"] if state else [])
        if not cwd.is_absolute() or not _inside(cwd.resolve(), roots):
            raise p.RpcError(p.INVALID_PARAMS, f"cwd {request.cwd} is outside the project and the run "
                             f"worktrees ({', '.join(map(str, roots))})")
    if request.session_file is not None:
        target = Path(request.session_file)
        runs = state / "runs" / (request.workflow_id or "") if state and request.workflow_id else None
        if (runs is None or not target.is_absolute() or not target.name.endswith(".session.json")
                or target.resolve().parent != runs.resolve()):
            raise p.RpcError(p.INVALID_PARAMS, f"session_file {request.session_file} is not "
                             f"<state>/runs/<workflow_id>/<phase>.session.json of this run")


def _denial_note(denials: tuple[PermissionDenied, ...]) -> str:
    first = denials[0]
    what = f"{first.tool} `{first.input}`" if first.input else first.tool
    more = f" and {len(denials) - 1} more" if len(denials) > 1 else ""
    return f"{len(denials)} tool use(s) denied by the agent's permissions: {what}: {first.message}{more}"


def shape_result(result: RunResult, allow_missing_decision: bool) -> dict[str, Any]:
    """A finished run as the phase decision the runner acts on.

    ``result.workspace_changed`` says whether the working directory changed
    during the run (None: unknown); with denials and no change the verdict is ``fail``.
    """
    changed = result.workspace_changed
    out: dict[str, Any] = {
        "summary": result.final_text,
        "session_id": result.session_id,
        "usage": usage_of(result),
        "rate_limited": None,
        "error": None,
        "permission_denied": [d.to_dict() for d in result.denials],
        "workspace_changed": changed,
    }
    if result.rate_limit is not None:
        limit = result.rate_limit
        return out | {
            "verdict": None,
            "reason": limit.message,
            "confidence": None,
            "risk": None,
            "evidence": [],
            "rate_limited": {"reset_at": limit.reset_at, "message": limit.message},
        }
    if result.error is not None:
        return out | failed(result.error.message)
    if result.denials and changed is False:
        return out | failed(
            f"permission denied, nothing changed: {_denial_note(result.denials)} (fix: widen the "
            "agent profile's permissions (mode: edit|full, allow_tools) in the workflow YAML, "
            "or make the phase's work fit them)"
        )
    try:
        decision = decide(result.final_text, allow_missing_decision)
    except VerdictError as exc:
        return out | failed(f"unusable verdict block: {exc}")
    keys = ("verdict", "reason", "confidence", "risk", "evidence", "defaulted")
    shaped = out | {k: decision[k] for k in keys if k in decision}
    if result.denials:
        shaped["reason"] = f"{shaped['reason']} [{_denial_note(result.denials)}]"
    return shaped


def record_session_id(path: Path, session_id: str) -> None:
    """Set ``session_id`` in a JSON file, keeping its other keys: write tmp, fsync, rename."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data["session_id"] = session_id
    atomic_json(path, data)


def _clip(value: Any, limit: int = TOOL_OUTPUT_LIMIT) -> Any:
    """Long strings (file contents in a Write call, command output) cut to ``limit`` characters."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"… [{len(value) - limit} more]"
    if isinstance(value, dict):
        return {k: _clip(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v, limit) for v in value]
    return value


def bus_event(event: ProviderEvent) -> tuple[str, str, dict[str, Any]] | None:
    """One engine event as (kind, level, data) on the bus; None for those the result carries."""
    if isinstance(event, TextDelta):
        return "agent_text", "info", {"text": event.text}
    if isinstance(event, ToolCall):
        return (
            "agent_tool_call",
            "info",
            {"name": event.name, "input": _clip(event.input), "id": event.id},
        )
    if isinstance(event, ToolResult):
        return (
            "agent_tool_result",
            "info",
            {"id": event.id, "is_error": event.is_error, "output": _clip(event.output)},
        )
    if isinstance(event, Usage):
        return (
            "agent_usage",
            "info",
            {
                "input_tokens": event.input_tokens,
                "output_tokens": event.output_tokens,
                "cost_usd": event.cost_usd,
            },
        )
    if isinstance(event, RateLimited):
        return "agent_rate_limited", "warn", {"reset_at": event.reset_at, "message": event.message}
    if isinstance(event, PermissionDenied):
        data = {"tool": event.tool, "input": event.input, "message": event.message, "id": event.id}
        return "agent_permission_denied", "warn", data
    return None
