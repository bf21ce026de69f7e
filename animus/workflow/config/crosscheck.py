"""Merging the files' layers and checking every cross-reference of the result.

Later files win by id. Then: every phase's agent exists; every workflow's
entries name phases or sub-workflows (inlined, no cycles, at most
``MAX_PHASES``); every rework target is a phase of its workflow; ``worktree:
required`` makes sense (and the project is a git repository); the default
workflow, every schedule's and trigger's workflow exist; no trigger shares an
id with a schedule. Each error names the file and line where the offending
field was written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from animus.errors import InvalidInput
from animus.git.repo import is_git_repo
from animus.git.spec import WorktreeMode
from animus.workflow.config.mcp_section import resolve_agents
from animus.workflow.config.nodes import MAX_PHASES, hint, one_line
from animus.workflow.config.sections import Layer, RawWorkflow
from animus.workflow.model import PhaseEntry, Schedule, Trigger, WorkflowConfig, WorkflowDefinition

__all__ = ["combine"]


def merge_layers(layers: Sequence[Layer]) -> Layer:
    merged = Layer()
    for layer in layers:
        merged.agents.update(layer.agents)
        merged.phases.update(layer.phases)
        merged.workflows.update(layer.workflows)
        merged.schedules.update(layer.schedules)
        merged.triggers.update(layer.triggers)
        merged.daemon.update(layer.daemon)
        merged.locs.update(layer.locs)
        merged.default_ref = layer.default_ref or merged.default_ref
        merged.mcp_servers.update(layer.mcp_servers)
        merged.agent_mcp.update({aid: layer.agent_mcp.get(aid) for aid in layer.agents})  # follows its agent
    return merged


class _Checks:
    def __init__(self, merged: Layer, sources: tuple[str, ...], root: Path | None) -> None:
        self.m = merged
        self.sources = sources
        self.root = root
        self.last = sources[-1] if sources else "<config>"

    def err(self, path: str, msg: str, fix: str | None = None) -> InvalidInput:
        src, line = self.m.locs.get(path, (self.last, 1))
        return InvalidInput(one_line(f"{src}:{line}: {path}: {msg}"), fix=fix,
                            details={"file": src, "line": line, "field": path})

    def agents(self) -> None:
        resolve_agents(self.m.agents, self.m.agent_mcp, self.m.mcp_servers, self.m.locs, self.last)
        for pid, phase in self.m.phases.items():
            if phase.agent is not None and phase.agent not in self.m.agents:
                raise self.err(f"phases.{pid}.agent", f"unknown agent '{phase.agent}'"
                               + hint(phase.agent, self.m.agents), fix="define it under agents:")

    def expand(self, raw: RawWorkflow, stack: tuple[str, ...]) -> list[PhaseEntry]:
        out: list[PhaseEntry] = []
        for i, item in enumerate(raw.items):
            here = f"{raw.path}.phases[{i}]"
            if isinstance(item, PhaseEntry):
                if item.phase_id not in self.m.phases:
                    raise self.err(here, f"unknown phase '{item.phase_id}'"
                                   + hint(item.phase_id, self.m.phases), fix="define it under phases:")
                out.append(item)
            elif item.ref not in self.m.workflows:
                raise self.err(here, f"unknown workflow_ref '{item.ref}'"
                               + hint(item.ref, self.m.workflows), fix="define it under workflows:")
            elif item.ref in stack:
                raise self.err(here, "workflow_ref cycle: " + " -> ".join((*stack, item.ref)),
                               fix="a workflow cannot include itself, directly or indirectly")
            else:
                out.extend(self.expand(self.m.workflows[item.ref], (*stack, item.ref)))
                if len(out) > MAX_PHASES:
                    raise self.err(here, f"workflow expands to more than {MAX_PHASES} phases",
                                   fix="include fewer sub-workflows")
        return out

    def workflow(self, wid: str, raw: RawWorkflow) -> WorkflowDefinition:
        entries = self.expand(raw, (wid,))
        ids = {e.phase_id for e in entries}
        for i, item in enumerate(raw.items):
            for verdict, target in item.on_verdict.items() if isinstance(item, PhaseEntry) else ():
                if target and target not in ids:
                    raise self.err(f"{raw.path}.phases[{i}].on_verdict.{verdict}.target",
                                   f"'{target}' is not a phase of workflow '{wid}'" + hint(target, ids),
                                   fix='name a phase of this workflow, or "" to end the workflow')
        if raw.worktree.mode is WorktreeMode.SKIP:
            required = [e.phase_id for e in entries if self.m.phases[e.phase_id].worktree is WorktreeMode.REQUIRED]
            if required:
                raise self.err(f"{raw.path}.worktree", f"skip, but its phase '{required[0]}' "
                               "has worktree: required", fix="set the workflow's worktree to auto or required")
        return WorkflowDefinition(wid, tuple(entries), raw.name, raw.description, raw.budget, raw.worktree,
                                  raw.merge)

    def git_required(self) -> None:
        required = [f"{raw.path}.worktree" for raw in self.m.workflows.values()
                    if raw.worktree.mode is WorktreeMode.REQUIRED]
        required += [f"phases.{p.id}.worktree" for p in self.m.phases.values()
                     if p.worktree is WorktreeMode.REQUIRED]
        if required and self.root is not None and not is_git_repo(self.root):  # say so now, not at run time
            raise self.err(required[0], f"required, but {self.root} is not a git repository",
                           fix=f"git -C {self.root} init && git -C {self.root} commit --allow-empty -m init, "
                               "or set worktree: auto")

    def routes(self, workflows: Mapping[str, WorkflowDefinition]) -> str | None:
        default_ref = self.m.default_ref or next(iter(workflows), None)
        if default_ref is not None and default_ref not in workflows:
            raise self.err("default_workflow_ref", f"unknown workflow '{default_ref}'"
                           + hint(default_ref, workflows), fix="name a workflow defined under workflows:")
        named: tuple[tuple[str, Mapping[str, Schedule | Trigger]], ...] = (
            ("schedules", self.m.schedules), ("triggers", self.m.triggers))
        for section, table in named:
            for sid, entry in table.items():
                ref = entry.workflow_ref or default_ref
                if ref is None:
                    raise self.err(f"{section}.{sid}", "no workflow_ref and no workflow to default to",
                                   fix="add workflow_ref: <workflow id>")
                if ref not in workflows:
                    raise self.err(f"{section}.{sid}.workflow_ref", f"unknown workflow '{ref}'"
                                   + hint(ref, workflows), fix="name a workflow defined under workflows:")
        for tid in self.m.triggers:
            if tid in self.m.schedules:  # workflow/fire routes by id: one id, one meaning
                raise self.err(f"triggers.{tid}", f"trigger id '{tid}' is also a schedule id",
                               fix="rename the trigger or the schedule")
        return default_ref


def combine(layers: Sequence[Layer], sources: tuple[str, ...], root: Path | None = None) -> WorkflowConfig:
    """Merge layers in order (later ids win) and check every cross-reference."""
    checks = _Checks(merge_layers(layers), sources, root)
    checks.agents()
    workflows = {wid: checks.workflow(wid, raw) for wid, raw in checks.m.workflows.items()}
    checks.git_required()
    default_ref = checks.routes(workflows)
    m = checks.m
    return WorkflowConfig(m.agents, m.phases, workflows, tuple(m.schedules.values()), default_ref, m.daemon,
                          sources, tuple(m.triggers.values()))
