"""One attempt of one phase: what it produced, whatever its kind.

``execute`` runs the phase by its mode (a command, an agent turn through the
daemon, an approved manual gate) and returns a ``PhaseResult``; a usage limit
or a spent budget raises ``Parked``, an unrunnable phase ``Blocked``
(``outcomes``). The runner records the result; nothing here writes state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animus.workflow.agent_phase import call_agent
from animus.workflow.command_phase import OUTPUT_TAIL, run_command
from animus.workflow.model import Mode, PhaseDefinition
from animus.workflow.run_context import RunContext
from animus.workflow.store import WorkflowRow

__all__ = ["Attempt", "PhaseResult", "execute"]


@dataclass(frozen=True)
class Attempt:
    """A phase attempt as recorded when it began."""

    id: int
    number: int
    provider: str | None
    session_file: Path
    started: float  # monotonic


@dataclass(frozen=True)
class PhaseResult:
    verdict: str
    reason: str
    tail: str = ""
    exit_code: int | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    session_id: str | None = None


def execute(ctx: RunContext, wf: WorkflowRow, phase: PhaseDefinition, attempt: Attempt,
            daemon_run_dir: Path) -> PhaseResult:
    if phase.mode is Mode.COMMAND:
        out = run_command(ctx, phase, attempt.number)
        return PhaseResult(out.verdict, out.reason, out.tail, out.exit_code)
    if phase.mode is Mode.MANUAL:
        return PhaseResult("advance", "approved by operator")
    # the provider plugin records the session where recovery looks: the daemon's runs/
    result = call_agent(ctx, wf, phase, attempt.provider or "", attempt.number,
                        daemon_run_dir / attempt.session_file.name)
    return PhaseResult(result["verdict"], result.get("reason") or result.get("summary") or "",
                       (result.get("summary") or "")[-OUTPUT_TAIL:], None, result.get("usage") or {},
                       result.get("session_id"))
