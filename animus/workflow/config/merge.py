"""Loading a project's workflow config: discover, parse, merge, cross-check.

A project's config is ``.animus/workflows.yaml`` followed by
``.animus/workflows/*.yaml`` in name order; later files override agents,
phases, workflows, schedules and triggers by id. With no files at all the
embedded defaults are used (``animus.workflow.defaults``); when files exist
but are broken, loading fails: it never falls back silently (reference §G.2,
#404). Loading is all-or-nothing: every file is read, interpolated, parsed
and checked, then the merged result is cross-checked, before anything is
returned, so a bad overlay can never half-apply or reach ``state/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from animus.errors import InvalidInput
from animus.git.repo import is_git_repo
from animus.git.spec import WorktreeMode
from animus.workflow.config.interpolate import interpolate
from animus.workflow.config.mcp_section import resolve_agents
from animus.workflow.config.nodes import MAX_PHASES, hint, one_line
from animus.workflow.config.sections import Layer, RawWorkflow, SectionParser
from animus.workflow.defaults import DEFAULTS_YAML, EMBEDDED_SOURCE
from animus.workflow.model import PhaseEntry, Schedule, Trigger, WorkflowConfig, WorkflowDefinition

__all__ = ["load_workflow_config", "load_workflow_texts", "workflow_files"]


def _parse(text: str, src: str, env: Mapping[str, str], root: Path | None) -> Layer:
    expanded = interpolate(text, env, src)
    try:
        return SectionParser(src, root).file(yaml.compose(expanded, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed document"
        if problem.startswith("but ") and exc.context:  # "expected a single document ... but found"
            problem = f"{exc.context} {problem}"
        line = mark.line + 1 if mark else 1
        raise InvalidInput(one_line(f"{src}:{line}: invalid YAML: {problem}"),
                           fix="check the indentation and quoting on that line") from None
    except yaml.YAMLError as exc:  # ReaderError: a character YAML does not allow
        pos = getattr(exc, "position", 0)
        line = expanded.count("\n", 0, pos) + 1
        raise InvalidInput(one_line(f"{src}:{line}: invalid YAML: {getattr(exc, 'reason', exc)}"),
                           fix="remove control characters; the file must be UTF-8 text") from None
    except RecursionError:
        raise InvalidInput(f"{src}:1: invalid YAML: nested too deeply") from None


def _combine(layers: Sequence[Layer], sources: tuple[str, ...], root: Path | None = None) -> WorkflowConfig:
    """Merge layers in order (later ids win) and check every cross-reference."""
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

    def err(path: str, msg: str, fix: str | None = None) -> InvalidInput:
        src, line = merged.locs.get(path, (sources[-1] if sources else "<config>", 1))
        return InvalidInput(one_line(f"{src}:{line}: {path}: {msg}"), fix=fix,
                            details={"file": src, "line": line, "field": path})

    resolve_agents(merged.agents, merged.agent_mcp, merged.mcp_servers, merged.locs,
                   sources[-1] if sources else "<config>")  # names may come from any file
    for pid, phase in merged.phases.items():
        if phase.agent is not None and phase.agent not in merged.agents:
            raise err(f"phases.{pid}.agent", f"unknown agent '{phase.agent}'"
                      + hint(phase.agent, merged.agents), fix="define it under agents:")

    def expand(raw: RawWorkflow, stack: tuple[str, ...]) -> list[PhaseEntry]:
        out: list[PhaseEntry] = []
        for i, item in enumerate(raw.items):
            here = f"{raw.path}.phases[{i}]"
            if isinstance(item, PhaseEntry):
                if item.phase_id not in merged.phases:
                    raise err(here, f"unknown phase '{item.phase_id}'"
                              + hint(item.phase_id, merged.phases), fix="define it under phases:")
                out.append(item)
            elif item.ref not in merged.workflows:
                raise err(here, f"unknown workflow_ref '{item.ref}'"
                          + hint(item.ref, merged.workflows), fix="define it under workflows:")
            elif item.ref in stack:
                raise err(here, "workflow_ref cycle: " + " -> ".join((*stack, item.ref)),
                          fix="a workflow cannot include itself, directly or indirectly")
            else:
                out.extend(expand(merged.workflows[item.ref], (*stack, item.ref)))
                if len(out) > MAX_PHASES:
                    raise err(here, f"workflow expands to more than {MAX_PHASES} phases",
                              fix="include fewer sub-workflows")
        return out

    workflows: dict[str, WorkflowDefinition] = {}
    for wid, raw in merged.workflows.items():
        entries = expand(raw, (wid,))
        ids = {e.phase_id for e in entries}
        for i, item in enumerate(raw.items):
            for verdict, target in item.on_verdict.items() if isinstance(item, PhaseEntry) else ():
                if target and target not in ids:
                    raise err(f"{raw.path}.phases[{i}].on_verdict.{verdict}.target",
                              f"'{target}' is not a phase of workflow '{wid}'" + hint(target, ids),
                              fix='name a phase of this workflow, or "" to end the workflow')
        workflows[wid] = WorkflowDefinition(wid, tuple(entries), raw.name, raw.description,
                                            raw.budget, raw.worktree, raw.merge)
        if raw.worktree.mode is WorktreeMode.SKIP:
            required = [e.phase_id for e in entries
                        if merged.phases[e.phase_id].worktree is WorktreeMode.REQUIRED]
            if required:
                raise err(f"{raw.path}.worktree", f"skip, but its phase '{required[0]}' "
                          "has worktree: required", fix="set the workflow's worktree to auto or required")

    required = [f"{raw.path}.worktree" for raw in merged.workflows.values()
                if raw.worktree.mode is WorktreeMode.REQUIRED]
    required += [f"phases.{p.id}.worktree" for p in merged.phases.values() if p.worktree is WorktreeMode.REQUIRED]
    if required and root is not None and not is_git_repo(root):  # say so now, not at run time
        raise err(required[0], f"required, but {root} is not a git repository",
                  fix=f"git -C {root} init && git -C {root} commit --allow-empty -m init, or set worktree: auto")

    default_ref = merged.default_ref or next(iter(workflows), None)
    if default_ref is not None and default_ref not in workflows:
        raise err("default_workflow_ref", f"unknown workflow '{default_ref}'"
                  + hint(default_ref, workflows), fix="name a workflow defined under workflows:")
    named: tuple[tuple[str, Mapping[str, Schedule | Trigger]], ...] = (
        ("schedules", merged.schedules), ("triggers", merged.triggers))
    for section, table in named:
        for sid, entry in table.items():
            ref = entry.workflow_ref or default_ref
            if ref is None:
                raise err(f"{section}.{sid}", "no workflow_ref and no workflow to default to",
                          fix="add workflow_ref: <workflow id>")
            if ref not in workflows:
                raise err(f"{section}.{sid}.workflow_ref", f"unknown workflow '{ref}'"
                          + hint(ref, workflows), fix="name a workflow defined under workflows:")
    for tid in merged.triggers:
        if tid in merged.schedules:  # workflow/fire routes by id: one id, one meaning
            raise err(f"triggers.{tid}", f"trigger id '{tid}' is also a schedule id",
                      fix="rename the trigger or the schedule")
    return WorkflowConfig(merged.agents, merged.phases, workflows,
                          tuple(merged.schedules.values()), default_ref, merged.daemon, sources,
                          tuple(merged.triggers.values()))


def workflow_files(project_root: Path) -> list[Path]:
    """``.animus/workflows.yaml``, then ``.animus/workflows/*.yaml`` by name."""
    base = project_root / ".animus"
    files = [base / "workflows.yaml"] if (base / "workflows.yaml").is_file() else []
    if (base / "workflows").is_dir():
        files += sorted(p for p in (base / "workflows").glob("*.yaml") if p.is_file())
    return files


def load_workflow_texts(texts: Sequence[tuple[str, str]], env: Mapping[str, str],
                        project_root: Path | None = None) -> WorkflowConfig:
    """Load ``(source name, YAML text)`` pairs as one config, in order."""
    layers = [_parse(text, src, env, project_root) for src, text in texts]
    return _combine(layers, tuple(src for src, _ in texts), project_root)


def load_workflow_config(project_root: Path, env: Mapping[str, str]) -> WorkflowConfig:
    """The project's workflow config, or the embedded defaults when it has no files."""
    files = workflow_files(project_root)
    if not files:
        return load_workflow_texts([(EMBEDDED_SOURCE, DEFAULTS_YAML)], {})
    texts = []
    for path in files:
        src = path.relative_to(project_root).as_posix()
        try:
            texts.append((src, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(one_line(f"{src}:1: cannot read: {exc}"),
                               fix="check the file's permissions; it must be UTF-8 text") from None
    return load_workflow_texts(texts, env, project_root)
