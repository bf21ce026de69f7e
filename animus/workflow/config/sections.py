"""The sections of one workflow YAML file (agents, phases, workflows, schedules, triggers).

``SectionParser`` turns one file's node tree into a ``Layer``; unknown keys
are errors with a hint, except the original's keys that Animus does not
model yet (``*_IGNORED``), which are accepted so existing files load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from yaml.nodes import Node, ScalarNode

from animus.errors import InvalidInput
from animus.git.spec import MergeSpec, WorktreeMode, WorktreeSpec, parse_post_success, parse_worktree
from animus.workflow.conditions import parse_condition
from animus.workflow.config.keys import (
    AGENT,
    AGENT_IGNORED,
    COMMAND,
    COMMAND_IGNORED,
    CONTRACT,
    ENTRY,
    PHASE,
    PHASE_IGNORED,
    SCHEDULE,
    TARGET_IGNORED,
    TOP,
    TOP_IGNORED,
    TRIGGER,
    TRIGGER_TYPES,
    WORKFLOW,
    WORKFLOW_IGNORED,
)
from animus.workflow.config.mcp_section import read_agent_list, read_catalog
from animus.workflow.config.nodes import ID, NodeReader, absent, cron_ok, hint, show
from animus.workflow.mcp_servers import McpServer
from animus.workflow.model import (
    AgentProfile,
    Budget,
    CommandSpec,
    CwdMode,
    DecisionContract,
    Idempotency,
    ManualSpec,
    Mode,
    PhaseDefinition,
    PhaseEntry,
    RetryPolicy,
    Risk,
    Schedule,
    Trigger,
    TriggerType,
    Verdict,
)
from animus.workflow.permissions import AgentPermissions, parse_permissions

__all__ = ["Layer", "Ref", "RawWorkflow", "SectionParser"]

T = TypeVar("T")

VERDICTS = [v.value for v in Verdict]

def _phase_worktree(value: Any, path: str) -> WorktreeMode:
    return parse_worktree(value, path, phase=True).mode


@dataclass(frozen=True)
class Ref:
    """A ``- workflow_ref: <id>`` entry; inlined once every file is merged."""

    ref: str


@dataclass
class RawWorkflow:
    path: str
    name: str | None
    description: str | None
    budget: Budget | None
    items: list[PhaseEntry | Ref]
    worktree: WorktreeSpec = field(default_factory=WorktreeSpec)
    merge: MergeSpec | None = None


@dataclass
class Layer:
    """One file's definitions, plus where each cross-checked field was written."""

    agents: dict[str, AgentProfile] = field(default_factory=dict)
    phases: dict[str, PhaseDefinition] = field(default_factory=dict)
    workflows: dict[str, RawWorkflow] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    default_ref: str | None = None
    daemon: dict[str, Any] = field(default_factory=dict)
    locs: dict[str, tuple[str, int]] = field(default_factory=dict)
    mcp_servers: dict[str, McpServer] = field(default_factory=dict)
    agent_mcp: dict[str, Any] = field(default_factory=dict)  # agent id -> its raw list, resolved after merge


class SectionParser(NodeReader):
    """Turns one file's node tree into a ``Layer``, raising located errors."""

    def __init__(self, src: str, root: Path | None) -> None:
        super().__init__(src, root)
        self.layer = Layer(locs=self.locs)

    # sections --------------------------------------------------------------

    def file(self, doc: Node | None) -> Layer:
        if doc is None:  # empty file, or comments only
            return self.layer
        # 'x-' keys hold YAML anchors for reuse, as in docker-compose files.
        extensions = {name for name, _, _ in self.items(doc, "") if name.startswith("x-")}
        top = self.fields(doc, "", TOP, TOP_IGNORED | extensions)
        if "agents" in top:
            self.agents(top["agents"])
        if "phases" in top:
            self.phases(top["phases"])
        for key in ("workflows", "pipelines"):
            if key in top:
                self.workflows(top[key], key)
        if "schedules" in top:
            self.schedules(top["schedules"])
        if "triggers" in top:
            self.triggers(top["triggers"])
        if "default_workflow_ref" in top:
            node = top["default_workflow_ref"]
            self.layer.default_ref = self.ident(node, "default_workflow_ref", "a workflow id")
            self.note("default_workflow_ref", node)
        if "daemon" in top:
            self.layer.daemon = self.plain(top["daemon"], "daemon")
        if "mcp_servers" in top:
            self.layer.mcp_servers = read_catalog(self, top["mcp_servers"])
        return self.layer

    def agents(self, node: Node) -> None:
        for aid, k, v in self.items(node, "agents"):
            path = f"agents.{aid}"
            self.ident(k, path, "an agent id")
            f = self.fields(v, path, AGENT, AGENT_IGNORED)
            provider = self.alias(f, path, "tool", "provider")
            prompt = self.opt(f, "system_prompt", path, self.text, None)
            if "system_prompt_file" in f:
                if prompt is not None:
                    raise self.err(f["system_prompt_file"], f"{path}.system_prompt_file",
                                   "give system_prompt or system_prompt_file, not both")
                prompt = self.prompt_file(f["system_prompt_file"], f"{path}.system_prompt_file")
            self.layer.agents[aid] = self.build(
                k, path, AgentProfile, id=aid,
                # The original's default tool; a missing plugin is reported at run time.
                provider="claude" if provider is None else self.ident(provider, f"{path}.tool"),
                model=self.opt(f, "model", path, self.text, None), system_prompt=prompt,
                fallback_provider=self.opt(f, "fallback_provider", path, self.ident, None),
                permissions=self.permissions(f, path))
            if "mcp_servers" in f:
                self.layer.agent_mcp[aid] = read_agent_list(self, f["mcp_servers"], path)

    def permissions(self, f: dict[str, Node], path: str) -> AgentPermissions:
        node = f.get("permissions")
        try:
            return parse_permissions(None if node is None else self._ctor.construct_object(node, deep=True),
                                     f"{path}.permissions")
        except InvalidInput as exc:
            raise self.err(node or 0, "", exc.message, exc.fix) from None  # the message names the key

    def prompt_file(self, node: Node, path: str) -> str:
        name = self.text(node, path)
        if self.root is None:
            raise self.err(node, path, "system_prompt_file needs a project directory",
                           fix="use system_prompt instead")
        try:
            return (self.root / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise self.err(node, path, f"cannot read {name}: {exc}".replace("\n", " "),
                           fix="the path is relative to the project root") from None

    def phases(self, node: Node) -> None:
        for pid, k, v in self.items(node, "phases"):
            path = f"phases.{pid}"
            self.ident(k, path, "a phase id")
            f = self.fields(v, path, PHASE, PHASE_IGNORED, required=("mode",))
            mode = self.choice(f["mode"], f"{path}.mode", Mode)
            agent_node = self.alias(f, path, "agent", "agent_id")
            agent = None
            if agent_node is not None:
                agent = self.ident(agent_node, f"{path}.agent", "an agent id")
                self.note(f"{path}.agent", agent_node)
            manual = self.opt(f, "manual", path, self.manual, None)
            self.layer.phases[pid] = self.build(
                k, path, PhaseDefinition, id=pid, mode=mode, agent=agent,
                directive=self.opt(f, "directive", path, self.text, None),
                system_prompt=self.opt(f, "system_prompt", path, self.text, None),
                command=self.opt(f, "command", path, self.command, None),
                manual=ManualSpec() if manual is None and mode is Mode.MANUAL else manual,
                decision_contract=self.opt(f, "decision_contract", path, self.contract,
                                           DecisionContract()),
                idempotency=self.opt(f, "idempotency", path,
                                     lambda n, p: self.choice(n, p, Idempotency),
                                     Idempotency.UNKNOWN),
                timeout_secs=self.opt(f, "timeout_secs", path, self.integer, None),
                retry=self.opt(f, "retry", path, self.retry, None),
                worktree=self.opt(f, "worktree", path, self.noted(_phase_worktree), None))

    def command(self, node: Node, path: str) -> CommandSpec:
        f = self.fields(node, path, COMMAND, COMMAND_IGNORED, required=("program",))
        env = {key: self.text(v, f"{path}.env.{key}")
               for key, _, v in self.items(f["env"], f"{path}.env")} if "env" in f else {}
        codes = tuple(self.integer(n, f"{path}.success_exit_codes[{i}]", 0)
                      for i, n in enumerate(self.seq(f["success_exit_codes"],
                                                     f"{path}.success_exit_codes"))
                      ) if "success_exit_codes" in f else (0,)
        return self.build(
            node, path, CommandSpec, program=self.text(f["program"], f"{path}.program"),
            args=self.texts(f["args"], f"{path}.args") if "args" in f else (), env=env,
            cwd_mode=self.opt(f, "cwd_mode", path, lambda n, p: self.choice(n, p, CwdMode),
                              CwdMode.PROJECT_ROOT),
            cwd_path=self.opt(f, "cwd_path", path, self.text, None),
            timeout_secs=self.opt(f, "timeout_secs", path, self.integer, None),
            success_exit_codes=codes)

    def manual(self, node: Node, path: str) -> ManualSpec:
        f = self.fields(node, path, {"instructions", "approval_note_required", "timeout_secs"})
        return ManualSpec(self.opt(f, "instructions", path, self.text, ""),
                          self.opt(f, "approval_note_required", path, self.boolean, False),
                          self.opt(f, "timeout_secs", path, self.integer, None))

    def contract(self, node: Node, path: str) -> DecisionContract:
        f = self.fields(node, path, CONTRACT, {"extra_json_schema", "fields"})
        return DecisionContract(
            self.opt(f, "min_confidence", path, lambda n, p: self.number(n, p, 0.0, 1.0), 0.6),
            self.opt(f, "max_risk", path, lambda n, p: self.choice(n, p, Risk), Risk.MEDIUM),
            self.opt(f, "allow_missing_decision", path, self.boolean, True),
            self.opt(f, "required_evidence", path, self.texts, ()))

    def retry(self, node: Node, path: str) -> RetryPolicy:
        f = self.fields(node, path, {"max_attempts", "backoff"})
        b = self.fields(f["backoff"], f"{path}.backoff",
                        {"initial_secs", "factor", "max_secs"}) if "backoff" in f else {}
        bpath = f"{path}.backoff"
        return self.build(
            node, path, RetryPolicy,
            max_attempts=self.opt(f, "max_attempts", path, self.integer, 3),
            initial_secs=self.opt(b, "initial_secs", bpath, lambda n, p: self.number(n, p, 0), 1.0),
            factor=self.opt(b, "factor", bpath, lambda n, p: self.number(n, p, 1), 2.0),
            max_secs=self.opt(b, "max_secs", bpath, lambda n, p: self.number(n, p, 0), 60.0))

    def budget(self, node: Node, path: str) -> Budget | None:
        f = self.fields(node, path, {"max_cost_usd", "max_tokens"})
        budget = Budget(self.opt(f, "max_cost_usd", path, lambda n, p: self.number(n, p, 0), None),
                        self.opt(f, "max_tokens", path, self.integer, None))
        return None if budget == Budget() else budget

    def workflows(self, node: Node, key: str) -> None:
        for i, item in enumerate(self.seq(node, key)):
            f = self.fields(item, f"{key}[{i}]", WORKFLOW, WORKFLOW_IGNORED,
                            required=("id", "phases"))
            wid = self.ident(f["id"], f"{key}[{i}].id", "a workflow id")
            path = f"{key}.{wid}"
            if wid in self.layer.workflows:
                raise self.err(f["id"], path, f"duplicate workflow id '{wid}' in this file",
                               fix="rename one, or move the override to a later file")
            nodes = self.seq(f["phases"], f"{path}.phases")
            if not nodes:
                raise self.err(f["phases"], f"{path}.phases", "a workflow needs at least one phase",
                               fix="list phase ids, e.g. phases: [build, test]")
            self.layer.workflows[wid] = RawWorkflow(
                path, self.opt(f, "name", path, self.text, None),
                self.opt(f, "description", path, self.text, None),
                self.opt(f, "budget", path, self.budget, None),
                [self.entry(n, f"{path}.phases[{j}]") for j, n in enumerate(nodes)],
                self.opt(f, "worktree", path, self.noted(parse_worktree), WorktreeSpec()),
                self.opt(f, "post_success", path, self.noted(parse_post_success), None))

    def noted(self, parse: Callable[[Any, str], T]) -> Callable[[Node, str], T]:
        """A reader for a git-layer block (``animus.git.spec``) that notes where it was written."""
        def read(node: Node, path: str) -> T:
            self.note(path, node)
            return self.spec(node, path, parse)
        return read

    def entry(self, node: Node, path: str) -> PhaseEntry | Ref:
        """An entry: ``p``, ``{p: {...}}``, ``{id: p, ...}`` or ``{workflow_ref: <id>}``."""
        self.note(path, node)
        if isinstance(node, ScalarNode):
            return PhaseEntry(self.ident(node, path, "a phase id"))
        pairs = self.items(node, path)
        names = [name for name, _, _ in pairs]
        if "id" in names:
            f = self.fields(node, path, {*ENTRY, "id"}, required=("id",))
            pid = self.ident(f["id"], f"{path}.id", "a phase id")
        elif names == ["workflow_ref"]:
            return Ref(self.ident(pairs[0][2], f"{path}.workflow_ref", "a workflow id"))
        elif len(pairs) == 1:
            pid = self.ident(pairs[0][1], path, "a phase id")
            f = self.fields(pairs[0][2], path, ENTRY)
        else:
            raise self.err(node, path, "expected a phase id, {<phase>: {...}}, "
                                       "{id: <phase>, ...} or {workflow_ref: <workflow>}",
                           fix="one phase per list item; indent its options under its name")
        skip_if = []
        exprs = self.seq(f["skip_if"], f"{path}.skip_if", True) if "skip_if" in f else []
        for j, n in enumerate(exprs):
            expr = self.text(n, f"{path}.skip_if[{j}]")
            self.build(n, f"{path}.skip_if[{j}]", parse_condition, text=expr)
            skip_if.append(expr)
        return self.build(node, path, PhaseEntry, phase_id=pid,
                          max_rework_attempts=self.opt(f, "max_rework_attempts", path,
                                                       lambda n, p: self.integer(n, p, 0), 3),
                          skip_if=tuple(skip_if), on_verdict=self.on_verdict(f, path))

    def on_verdict(self, f: dict[str, Node], path: str) -> dict[str, str]:
        routes: dict[str, str] = {}
        pairs = self.items(f["on_verdict"], f"{path}.on_verdict") if "on_verdict" in f else []
        for verdict, k, v in pairs:
            vpath = f"{path}.on_verdict.{verdict}"
            if verdict not in VERDICTS:
                raise self.err(k, vpath, "unknown verdict" + hint(verdict, VERDICTS),
                               fix="use advance, rework, skip or fail")
            target = v if isinstance(v, ScalarNode) else self.fields(
                v, vpath, {"target"}, TARGET_IGNORED).get("target")
            if target is None or absent(target):
                continue
            name = self.text(target, f"{vpath}.target")
            if name and not ID.match(name):
                raise self.err(target, f"{vpath}.target",
                               f"expected a phase id, got {show(target)}",
                               fix='name a phase of this workflow, or "" to end the workflow')
            routes[verdict] = name
            self.note(f"{vpath}.target", target)
        return routes

    def schedules(self, node: Node) -> None:
        for i, item in enumerate(self.seq(node, "schedules")):
            f = self.fields(item, f"schedules[{i}]", SCHEDULE, required=("id", "cron"))
            sid = self.ident(f["id"], f"schedules[{i}].id", "a schedule id")
            path = f"schedules.{sid}"
            self.note(path, f["id"])
            if sid in self.layer.schedules:
                raise self.err(f["id"], path, f"duplicate schedule id '{sid}' in this file",
                               fix="give each schedule its own id")
            cron = self.text(f["cron"], f"{path}.cron")
            if not cron_ok(cron):
                raise self.err(f["cron"], f"{path}.cron",
                               f"expected a 5-field cron expression, got {show(f['cron'])}",
                               fix="e.g. '0 2 * * *' (02:00 daily) or @hourly")
            ref = self.opt(f, "workflow_ref", path, self.ident, None)
            if ref is not None:
                self.note(f"{path}.workflow_ref", f["workflow_ref"])
            self.layer.schedules[sid] = Schedule(
                sid, cron, ref, self.opt(f, "enabled", path, self.boolean, True),
                self.opt(f, "input", path, self.plain, {}))


    def triggers(self, node: Node) -> None:
        for i, item in enumerate(self.seq(node, "triggers")):
            f = self.fields(item, f"triggers[{i}]", TRIGGER, required=("id", "type"))
            tid = self.ident(f["id"], f"triggers[{i}].id", "a trigger id")
            path = f"triggers.{tid}"
            self.note(path, f["id"])
            if tid in self.layer.triggers:
                raise self.err(f["id"], path, f"duplicate trigger id '{tid}' in this file",
                               fix="give each trigger its own id")
            kind = self.text(f["type"], f"{path}.type")
            if kind not in TRIGGER_TYPES:
                raise self.err(f["type"], f"{path}.type", f"unknown trigger type {show(f['type'])}"
                               + hint(kind, TRIGGER_TYPES), fix="use cron, file_watcher or webhook")
            config: dict[str, Any] = self.opt(f, "config", path, self.plain, {})
            cron = config.get("cron")
            if TRIGGER_TYPES[kind] is TriggerType.CRON and isinstance(cron, str) and not cron_ok(cron):
                raise self.err(f["config"], f"{path}.config.cron",
                               f"expected a 5-field cron expression, got '{cron}'",
                               fix="e.g. '0 2 * * *' (02:00 daily) or @hourly")
            ref = self.opt(f, "workflow_ref", path, self.ident, None)
            if ref is not None:
                self.note(f"{path}.workflow_ref", f["workflow_ref"])
            trigger_input: dict[str, Any] = self.opt(f, "input", path, self.plain, {})
            self.layer.triggers[tid] = self.build(
                f["id"], path, Trigger, id=tid, type=TRIGGER_TYPES[kind], workflow_ref=ref,
                enabled=self.opt(f, "enabled", path, self.boolean, True), config=config,
                input=trigger_input)
