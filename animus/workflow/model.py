"""The workflow-definition model: what a loaded ``workflows.yaml`` *means*.

These are frozen dataclasses so that a config, once loaded and validated, can
be shared between the scheduler, the runners and the CLI without anyone
mutating it behind the others' backs. Each class checks the combinations that
make no sense (a command phase without a command, a cwd of ``path`` without a
path) in ``__post_init__``, so an invalid spec cannot be built even by code
that bypasses the YAML loader; the loader adds the file and line.

Sequences are tuples (immutable); maps are plain dicts. ``to_plain`` and
``config_from_plain`` convert to and from JSON-ready data for the compiled
config in ``state/``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from animus.errors import InvalidInput, NotFound
from animus.workflow.mcp_servers import McpServer
from animus.workflow.permissions import AgentPermissions, parse_permissions
from animus.git.spec import MergeSpec, WorktreeMode, WorktreeSpec, parse_merge, parse_worktree

__all__ = [
    "AgentProfile",
    "Budget",
    "CommandSpec",
    "CwdMode",
    "DecisionContract",
    "Idempotency",
    "ManualSpec",
    "Mode",
    "PhaseDefinition",
    "PhaseEntry",
    "RetryPolicy",
    "Risk",
    "Schedule",
    "Trigger",
    "TriggerType",
    "Verdict",
    "WorkflowConfig",
    "WorkflowDefinition",
    "config_from_plain",
    "to_plain",
]


class Mode(StrEnum):
    AGENT = "agent"
    COMMAND = "command"
    MANUAL = "manual"


class Idempotency(StrEnum):
    """Whether a phase may be re-run automatically after a crash (reference §B.6)."""

    IDEMPOTENT = "idempotent"
    SIDEEFFECTING = "sideeffecting"
    UNKNOWN = "unknown"


class CwdMode(StrEnum):
    PROJECT_ROOT = "project_root"
    TASK_ROOT = "task_root"
    PATH = "path"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Verdict(StrEnum):
    ADVANCE = "advance"
    REWORK = "rework"
    SKIP = "skip"
    FAIL = "fail"


_VERDICTS = frozenset(v.value for v in Verdict)


def _bad(message: str, fix: str | None = None) -> InvalidInput:
    return InvalidInput(message, fix=fix)


@dataclass(frozen=True)
class AgentProfile:
    id: str
    provider: str
    model: str | None = None
    system_prompt: str | None = None
    fallback_provider: str | None = None
    permissions: AgentPermissions = AgentPermissions()
    mcp_servers: tuple[McpServer, ...] = ()  # resolved against the top-level mcp_servers at load

    def __post_init__(self) -> None:
        if not self.id:
            raise _bad("agent id must not be empty")
        if not self.provider:
            raise _bad(f"agent {self.id}: provider must not be empty",
                       "set tool: claude (or another provider)")


@dataclass(frozen=True)
class CommandSpec:
    program: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cwd_mode: CwdMode = CwdMode.PROJECT_ROOT
    cwd_path: str | None = None
    timeout_secs: int | None = None
    success_exit_codes: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.program:
            raise _bad("command.program must not be empty")
        if (self.cwd_mode is CwdMode.PATH) != bool(self.cwd_path):
            raise _bad("command.cwd_path is required with cwd_mode: path, and only then",
                       "set cwd_mode: path together with cwd_path, or drop cwd_path")
        if self.timeout_secs is not None and self.timeout_secs <= 0:
            raise _bad("command.timeout_secs must be positive")
        if not self.success_exit_codes:
            raise _bad("command.success_exit_codes must not be empty", "use [0]")


@dataclass(frozen=True)
class ManualSpec:
    instructions: str = ""
    approval_note_required: bool = False
    timeout_secs: int | None = None


@dataclass(frozen=True)
class DecisionContract:
    """The gate on a phase's verdict envelope (reference §B.3, §B.5)."""

    min_confidence: float = 0.6
    max_risk: Risk = Risk.MEDIUM
    allow_missing_decision: bool = True
    required_evidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise _bad("decision_contract.min_confidence must be between 0 and 1")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of a failed attempt; the delay for attempt n is initial * factor^(n-1), capped."""

    max_attempts: int = 3
    initial_secs: float = 1.0
    factor: float = 2.0
    max_secs: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise _bad("retry.max_attempts must be at least 1")
        if self.initial_secs < 0 or self.factor < 1 or self.max_secs < self.initial_secs:
            raise _bad("retry.backoff needs initial_secs >= 0, factor >= 1 "
                       "and max_secs >= initial_secs")

    def delay_secs(self, attempt: int) -> float:
        return float(min(self.initial_secs * self.factor ** max(attempt - 1, 0), self.max_secs))


@dataclass(frozen=True)
class PhaseDefinition:
    id: str
    mode: Mode
    agent: str | None = None
    directive: str | None = None
    system_prompt: str | None = None
    command: CommandSpec | None = None
    manual: ManualSpec | None = None
    decision_contract: DecisionContract = field(default_factory=DecisionContract)
    idempotency: Idempotency = Idempotency.UNKNOWN
    timeout_secs: int | None = None
    retry: RetryPolicy | None = None
    worktree: WorktreeMode | None = None  # per phase only the mode: a run's phases share one worktree

    def __post_init__(self) -> None:
        if self.mode is Mode.AGENT and not self.agent:
            raise _bad("mode agent needs an agent", "add agent: <agent id from agents:>")
        if self.mode is not Mode.AGENT and self.agent:
            raise _bad(f"agent is only valid with mode: agent (this phase is mode {self.mode})")
        if self.mode is Mode.COMMAND and self.command is None:
            raise _bad("mode command needs a command block",
                       "add command: {program: ..., args: [...]}")
        if self.mode is not Mode.COMMAND and self.command is not None:
            raise _bad(f"command is only valid with mode: command (this phase is mode {self.mode})")
        if self.mode is not Mode.MANUAL and self.manual is not None:
            raise _bad(f"manual is only valid with mode: manual (this phase is mode {self.mode})")
        if self.timeout_secs is not None and self.timeout_secs <= 0:
            raise _bad("timeout_secs must be positive")


@dataclass(frozen=True)
class PhaseEntry:
    """One step of a workflow: which phase runs, and where each verdict goes."""

    phase_id: str
    max_rework_attempts: int = 3
    skip_if: tuple[str, ...] = ()
    on_verdict: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.max_rework_attempts < 0:
            raise _bad("max_rework_attempts must not be negative")
        for verdict in self.on_verdict:
            if verdict not in _VERDICTS:
                raise _bad(f"on_verdict: unknown verdict {verdict!r}",
                           "use advance, rework, skip or fail")


@dataclass(frozen=True)
class Budget:
    max_cost_usd: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class WorkflowDefinition:
    id: str
    phases: tuple[PhaseEntry, ...]
    name: str | None = None
    description: str | None = None
    budget: Budget | None = None
    worktree: WorktreeSpec = field(default_factory=WorktreeSpec)
    merge: MergeSpec | None = None  # post_success.merge; None: nothing is delivered

    def __post_init__(self) -> None:
        if not self.phases:
            raise _bad(f"workflow {self.id} has no phases")

    def index_of(self, phase_id: str) -> int | None:
        return next((i for i, e in enumerate(self.phases) if e.phase_id == phase_id), None)


@dataclass(frozen=True)
class Schedule:
    id: str
    cron: str
    workflow_ref: str | None = None
    enabled: bool = True
    input: dict[str, Any] = field(default_factory=dict)


class TriggerType(StrEnum):
    """What a ``triggers:`` entry listens to; each type is served by one trigger plugin."""

    CRON = "cron"
    FILE_WATCHER = "file_watcher"
    WEBHOOK = "webhook"


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


@dataclass(frozen=True)
class Trigger:
    """A ``triggers:`` entry (reference §B.1): an event source that starts a workflow.

    ``config`` is read by the trigger plugin of the type: ``cron`` needs
    ``cron``; ``file_watcher`` needs ``paths`` (and takes ``debounce_secs``,
    ``ignore`` globs); ``webhook`` takes ``secret`` or ``secret_env``.
    """

    id: str
    type: TriggerType
    workflow_ref: str | None = None
    enabled: bool = True
    config: dict[str, Any] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise _bad("trigger id must not be empty")
        cfg = self.config
        if self.type is TriggerType.CRON and not (isinstance(cfg.get("cron"), str) and cfg["cron"].strip()):
            raise _bad("a cron trigger needs config.cron", "add config: {cron: '0 2 * * *'}")
        if self.type is TriggerType.FILE_WATCHER:
            if not _strings(cfg.get("paths")) or not cfg["paths"]:
                raise _bad("a file_watcher trigger needs config.paths (a list of paths)",
                           "add config: {paths: [src]}")
            if "ignore" in cfg and not _strings(cfg["ignore"]):
                raise _bad("config.ignore must be a list of glob patterns", "e.g. ignore: ['*.tmp', 'build/**']")
            debounce = cfg.get("debounce_secs", 0)
            if isinstance(debounce, bool) or not isinstance(debounce, (int, float)) or debounce < 0:
                raise _bad("config.debounce_secs must be a number >= 0")
        if self.type is TriggerType.WEBHOOK:
            for key in ("secret", "secret_env"):
                if key in cfg and not (isinstance(cfg[key], str) and cfg[key]):
                    raise _bad(f"config.{key} must be a non-empty string")


@dataclass(frozen=True)
class WorkflowConfig:
    agents: dict[str, AgentProfile]
    phases: dict[str, PhaseDefinition]
    workflows: dict[str, WorkflowDefinition]
    schedules: tuple[Schedule, ...] = ()
    default_workflow_ref: str | None = None
    daemon: dict[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    triggers: tuple[Trigger, ...] = ()

    def trigger_ids(self) -> dict[str, str]:
        """Every id ``workflow/fire`` routes: schedule ids and trigger ids, with their type."""
        out = {s.id: TriggerType.CRON.value for s in self.schedules}
        out.update({t.id: t.type.value for t in self.triggers})
        return out

    def workflow(self, ref: str | None = None) -> WorkflowDefinition:
        """The workflow named ``ref``, or the default one when ``ref`` is None."""
        key = ref or self.default_workflow_ref
        if key is None or key not in self.workflows:
            known = ", ".join(self.workflows) or "none"
            raise NotFound(f"workflow {key!r} is not defined (known: {known})",
                           fix="add it under workflows: in .animus/workflows.yaml")
        return self.workflows[key]


def to_plain(obj: Any) -> Any:
    """JSON-ready data for any model object (enums become their values)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, StrEnum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def _command(d: dict[str, Any]) -> CommandSpec:
    return CommandSpec(d["program"], tuple(d["args"]), dict(d["env"]), CwdMode(d["cwd_mode"]),
                       d["cwd_path"], d["timeout_secs"], tuple(d["success_exit_codes"]))


def _phase(d: dict[str, Any]) -> PhaseDefinition:
    dc = d["decision_contract"]
    return PhaseDefinition(
        id=d["id"], mode=Mode(d["mode"]), agent=d["agent"], directive=d["directive"],
        system_prompt=d["system_prompt"],
        command=None if d["command"] is None else _command(d["command"]),
        manual=None if d["manual"] is None else ManualSpec(**d["manual"]),
        decision_contract=DecisionContract(dc["min_confidence"], Risk(dc["max_risk"]),
                                           dc["allow_missing_decision"],
                                           tuple(dc["required_evidence"])),
        idempotency=Idempotency(d["idempotency"]), timeout_secs=d["timeout_secs"],
        retry=None if d["retry"] is None else RetryPolicy(**d["retry"]),
        worktree=WorktreeMode(d["worktree"]) if d.get("worktree") else None,
    )


def _workflow(d: dict[str, Any]) -> WorkflowDefinition:
    entries = tuple(PhaseEntry(e["phase_id"], e["max_rework_attempts"], tuple(e["skip_if"]),
                               dict(e["on_verdict"])) for e in d["phases"])
    budget = None if d["budget"] is None else Budget(**d["budget"])
    return WorkflowDefinition(d["id"], entries, d["name"], d["description"], budget,
                              parse_worktree(d.get("worktree")), parse_merge(d["merge"]) if d.get("merge") else None)


def config_from_plain(data: dict[str, Any]) -> WorkflowConfig:
    """Inverse of ``to_plain(config)``; raises KeyError/TypeError/ValueError on bad data."""
    return WorkflowConfig(
        agents={k: AgentProfile(**(v | {"permissions": parse_permissions(v.get("permissions")),
                                        "mcp_servers": tuple(map(McpServer.from_wire, v.get("mcp_servers") or ()))}))
                for k, v in data["agents"].items()},
        phases={k: _phase(v) for k, v in data["phases"].items()},
        workflows={k: _workflow(v) for k, v in data["workflows"].items()},
        schedules=tuple(Schedule(**s) for s in data["schedules"]),
        default_workflow_ref=data["default_workflow_ref"],
        daemon=dict(data["daemon"]),
        sources=tuple(data["sources"]),
        triggers=tuple(Trigger(t["id"], TriggerType(t["type"]), t["workflow_ref"], t["enabled"],
                               dict(t["config"]), dict(t["input"])) for t in data.get("triggers", [])),
    )
