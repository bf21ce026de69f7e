"""An agent phase, from the runner's side: one ``agent/run`` through the daemon.

The runner builds the prompt (task, directive, the reviewer's feedback on a
rework), calls the phase's provider plugin through the control socket, and
turns the reply into a verdict. A provider that is not installed blocks the
workflow with a hard error naming the install command; a usage limit parks
it until the reset time; a spent budget parks it until an operator resumes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from animus.errors import AnimusError, NotFound, Unavailable
from animus.workflow.model import DecisionContract, PhaseDefinition, WorkflowConfig
from animus.workflow.outcomes import Blocked, Parked
from animus.workflow.run_context import RunContext
from animus.workflow.store import WorkflowRow

__all__ = ["apply_contract", "call_agent", "cancel_agent", "build_prompt"]

UNAVAILABLE_RETRIES = 3


def build_prompt(wf: WorkflowRow, phase: PhaseDefinition) -> str:
    subject = wf.get("subject") or {}
    parts = [f"# Task: {subject.get('title') or wf.get('subject_id') or 'ad-hoc run'}"]
    if subject.get("id"):
        parts.append(f"Task id: {subject['id']}")
    if subject.get("description"):
        parts.append(str(subject["description"]))
    if phase.directive:
        parts.append(f"## Phase: {phase.id}\n{phase.directive}")
    if wf.get("feedback"):
        parts.append(f"## Feedback from the previous attempt (rework)\n{wf['feedback']}")
    return "\n\n".join(parts)


def _installed(provider: str) -> bool:
    from animus.plugin_runtime.registry import Registry

    home = Path(os.environ.get("ANIMUS_HOME") or Path.home() / ".animus")
    plugins_dir = Path(os.environ.get("ANIMUS_PLUGIN_DIR") or home / "plugins")
    entry = Registry(plugins_dir).entries().get(provider)
    return entry is not None and entry.get("role") == "provider"


def _over_budget(config: WorkflowConfig, wf: WorkflowRow) -> str | None:
    budget = config.workflows[wf["workflow_ref"]].budget
    usage = wf.get("usage") or {}
    if budget is None:
        return None
    if budget.max_cost_usd is not None and usage.get("cost_usd", 0) >= budget.max_cost_usd:
        return f"budget exceeded: ${usage.get('cost_usd', 0):.4f} of ${budget.max_cost_usd:.2f}"
    tokens = usage.get("input_tokens", 0) + usage.get("output_tokens", 0)
    if budget.max_tokens is not None and tokens >= budget.max_tokens:
        return f"budget exceeded: {tokens} of {budget.max_tokens} tokens"
    return None


def _not_installed(provider: str, phase: PhaseDefinition) -> Blocked:
    return Blocked(f"provider plugin {provider or '(none)'} is not installed; phase {phase.id} cannot run "
                   f"(fix: animus plugin install-defaults, or change the agent's provider in the workflow YAML)")


def call_agent(ctx: RunContext, wf: WorkflowRow, phase: PhaseDefinition, provider: str, attempt: int,
               session_file: Path) -> dict[str, Any]:
    # a remote runner cannot see the daemon's plugin registry: the daemon answers not_found instead
    if not provider or (not ctx.remote and not _installed(provider)):
        raise _not_installed(provider, phase)
    over = _over_budget(ctx.config, wf)
    if over:
        raise Parked(f"{over} (raise the budget, then animus workflow resume {wf['id']})", None)
    agent = ctx.config.agents.get(phase.agent or "")
    system = "\n\n".join(x for x in (agent.system_prompt if agent else None, phase.system_prompt) if x)
    ctx.in_flight.agent_key = f"{wf['id']}/{phase.id}/{attempt}"
    ctx.in_flight.agent_provider = provider
    resume = wf.get("resume_session")
    params = {
        "prompt": build_prompt(wf, phase), "system_prompt": system or None, "model": agent.model if agent else None,
        "cwd": str(ctx.agent_cwd), "timeout": phase.timeout_secs or 1800,
        "allow_missing_decision": phase.decision_contract.allow_missing_decision,
        "workflow_id": wf["id"], "run_id": ctx.run_id, "phase": phase.id, "run_key": ctx.in_flight.agent_key,
        "session_file": str(session_file),
        "permissions": agent.permissions.to_plain() if agent else None,
        "mcp_servers": [s.to_wire() for s in agent.mcp_servers] if agent else [],
        "task_id": wf.get("subject_id"),  # qualified (task:TASK-001): the animus MCP server's "my task"
    }
    if resume:
        params["session_id"] = resume
    try:
        result = _call_provider(ctx, provider, "agent/resume" if resume else "agent/run", params, phase)
    except (Parked, Blocked) as exc:
        fallback = agent.fallback_provider if agent else None
        if not fallback or (not ctx.remote and not _installed(fallback)):
            raise
        # the primary is limited or down: the profile's fallback takes the phase, in a fresh session
        ctx.publish("agent", "agent_fallback", "warn", phase=phase.id, fallback_from=provider,
                       fallback_to=fallback, reason=str(exc))
        ctx.in_flight.agent_provider = fallback
        params.pop("session_id", None)
        result = _call_provider(ctx, fallback, "agent/run", params, phase)
        result["provider"] = fallback
    ctx.in_flight.agent_key = None
    return apply_contract(result, phase.decision_contract)


def apply_contract(result: dict[str, Any], contract: DecisionContract) -> dict[str, Any]:
    """The phase's decision contract over the provider's decision: an advance it does not trust is rework.

    A block without confidence/risk carries the provider's documented defaults
    (0.8, medium; listed in ``defaulted``): good enough unless the contract asks
    for more, and then the reason says which value was missing.
    """
    verdict = result.get("verdict") or "fail"
    if result.get("error") and verdict == "fail":
        result["reason"] = str(result["error"])
    defaulted = result.get("defaulted") or []
    confidence = result.get("confidence")
    if verdict == "advance" and isinstance(confidence, (int, float)) and confidence < contract.min_confidence:
        result["verdict"] = "rework"
        given = f"no confidence given (default {confidence})" if "confidence" in defaulted else f"confidence {confidence}"
        result["reason"] = f"decision rejected by contract: {given} < {contract.min_confidence}"
    risks = ("low", "medium", "high")
    risk = result.get("risk")
    if verdict == "advance" and risk in risks and risks.index(risk) > risks.index(contract.max_risk.value):
        result["verdict"] = "rework"
        given = f"no risk given (default {risk})" if "risk" in defaulted else f"risk {risk}"
        result["reason"] = f"decision rejected by contract: {given} above {contract.max_risk.value}"
    return result


def _call_provider(ctx: RunContext, provider: str, method: str, params: dict[str, Any],
                   phase: PhaseDefinition) -> dict[str, Any]:
    """One agent/run (or resume) through the daemon; a usage limit raises Parked,
    an unreachable provider Blocked."""
    reply: dict[str, Any] = {}
    for attempt_no in range(UNAVAILABLE_RETRIES):
        try:
            reply = ctx.control().call("plugin/call", {"name": provider, "method": method, "params": params,
                                                          "timeout": params["timeout"] + 30},
                                          timeout=params["timeout"] + 60)
            break
        except Unavailable as exc:
            if attempt_no == UNAVAILABLE_RETRIES - 1:
                raise Blocked(f"provider plugin {provider} unavailable: {exc.message} (fix: animus daemon health)") from None
            time.sleep(2 ** attempt_no)
        except NotFound:
            raise _not_installed(provider, phase) from None
        except AnimusError as exc:
            raise Blocked(f"provider plugin {provider}: {exc.message}") from None
    if "error" in reply:
        err = reply["error"] or {}
        return {"verdict": "fail", "reason": f"{provider} {method} failed: {err.get('message')}"}
    result = dict(reply.get("result") or {})
    limit = result.get("rate_limited")
    if limit:
        # a reset time that is missing or already past is not to be trusted: wait a while anyway
        min_park = float(os.environ.get("ANIMUS_MIN_PARK_SECS", "60"))  # read per call: runners are forked
        reset = max(float(limit.get("reset_at") or 0), time.time() + min_park)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(reset))
        raise Parked(f"{provider} usage limit until {when}", reset)
    return result


def cancel_agent(ctx: RunContext) -> None:
    ctx.control().call("plugin/call", {"name": ctx.in_flight.agent_provider, "method": "agent/cancel",
                                       "params": {"run_key": ctx.in_flight.agent_key}}, timeout=5)
