"""Phase transitions: where a workflow goes after a phase returns its verdict.

This is the decision half of the workflow runner, kept pure in the OTP manner
(the supervisor's restart decision is separated from the process work in the
same way): a workflow definition, the current phase index, a verdict and the
rework counters go in; a ``Next``, ``Complete`` or ``Fail`` comes out. The
runner only carries the step out and persists the counters it is handed back.

Verdict semantics (reference §B.5):

- ``advance``: the next phase, or ``on_verdict.advance.target``;
- ``skip``: like advance, with ``on_verdict.skip.target``;
- ``rework``: ``on_verdict.rework.target`` (default: the previous phase),
  counted against the phase's ``max_rework_attempts``; when they are used up
  the workflow fails with ``rework attempts exhausted for <phase> (max N)``;
- ``fail``: ends the workflow as failed, or routes to ``on_verdict.fail.target``.

A target of ``""`` terminates: completed for advance/skip, failed for
rework/fail. Rework and fail routes carry the phase's feedback (the reviewer's
reason) into ``Next.feedback`` so the runner can put it in the next prompt.
Phases whose ``skip_if`` holds for the task are passed over when ``task`` is
given, and listed in ``Next.skipped``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from animus.workflow.conditions import first_match
from animus.workflow.model import PhaseEntry, Verdict, WorkflowDefinition

__all__ = ["Complete", "Fail", "Next", "Step", "next_step", "skip_reason", "start"]


@dataclass(frozen=True)
class Next:
    phase_index: int
    phase_id: str
    rework_counts: Mapping[str, int] = field(default_factory=dict)
    feedback: str | None = None
    from_phase: str | None = None
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Complete:
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fail:
    reason: str


Step = Next | Complete | Fail


def skip_reason(entry: PhaseEntry, task: Mapping[str, Any] | None) -> str | None:
    """The ``skip_if`` expression that makes this entry skip for ``task``, if any."""
    if task is None or not entry.skip_if:
        return None
    return first_match(entry.skip_if, task)


def _forward(workflow: WorkflowDefinition, index: int, counts: Mapping[str, int],
             task: Mapping[str, Any] | None, feedback: str | None = None,
             from_phase: str | None = None) -> Next | Complete:
    """A step to ``index``, passing over entries whose skip_if holds."""
    skipped: list[str] = []
    while index < len(workflow.phases):
        entry = workflow.phases[index]
        if skip_reason(entry, task) is None:
            return Next(index, entry.phase_id, dict(counts), feedback, from_phase, tuple(skipped))
        skipped.append(entry.phase_id)
        index += 1
    return Complete(tuple(skipped))


def _resolve(workflow: WorkflowDefinition, target: str, current: int, backward: bool) -> int | None:
    """Index of ``target``; with repeated phases, the nearest one in the preferred direction."""
    ids = [e.phase_id for e in workflow.phases]
    back = [i for i in range(current, -1, -1) if ids[i] == target]
    ahead = [i for i in range(current + 1, len(ids)) if ids[i] == target]
    order = back + ahead if backward else ahead + back
    return order[0] if order else None


def start(workflow: WorkflowDefinition, task: Mapping[str, Any] | None = None) -> Next | Complete:
    """The first phase to run (after skip_if), or Complete when every phase skips."""
    return _forward(workflow, 0, {}, task)


def next_step(
    workflow: WorkflowDefinition,
    index: int,
    verdict: Verdict | str,
    rework_counts: Mapping[str, int],
    *,
    feedback: str | None = None,
    target_phase: str | None = None,
    task: Mapping[str, Any] | None = None,
) -> Step:
    """Decide what follows phase ``index`` returning ``verdict``.

    ``target_phase`` is an explicit target from the phase decision; it
    overrides ``on_verdict``. ``rework_counts`` is never mutated: the counts
    to persist come back in ``Next.rework_counts``.
    """
    if not 0 <= index < len(workflow.phases):
        raise ValueError(f"phase index {index} is outside workflow {workflow.id}")
    entry = workflow.phases[index]
    phase = entry.phase_id
    try:
        kind = Verdict(verdict)
    except ValueError:
        return Fail(f"phase {phase} returned unknown verdict {str(verdict)!r}")
    target = target_phase if target_phase is not None else entry.on_verdict.get(kind.value)
    counts = dict(rework_counts)

    if kind is Verdict.REWORK:
        used = counts.get(phase, 0)
        if used >= entry.max_rework_attempts:
            return Fail(f"rework attempts exhausted for {phase} (max {entry.max_rework_attempts})")
        counts[phase] = used + 1
        if target == "":
            return Fail(f"phase {phase} asked for rework and its rework target ends the workflow")
        dest = max(index - 1, 0) if target is None else _resolve(workflow, target, index, True)
    elif kind is Verdict.FAIL:
        if not target:
            detail = f": {feedback}" if feedback else ""
            return Fail(f"phase {phase} failed{detail}")
        dest = _resolve(workflow, target, index, False)
    else:
        if target == "":
            return Complete()
        dest = index + 1 if target is None else _resolve(workflow, target, index, False)

    if dest is None:
        return Fail(f"phase {phase} routed {kind.value} to {target!r}, "
                    f"which is not a phase of workflow {workflow.id}")
    carry = kind in (Verdict.REWORK, Verdict.FAIL)
    return _forward(workflow, dest, counts, task,
                    feedback if carry else None, phase if carry else None)
