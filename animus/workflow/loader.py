"""Load, validate, merge and compile a project's workflow YAML.

A project's config is ``.animus/workflows.yaml`` followed by
``.animus/workflows/*.yaml`` in name order; later files override agents,
phases, workflows, schedules and triggers by id. With no files at all the embedded
defaults are used (``animus.workflow.defaults``); when files exist but are
broken, loading fails: it never falls back silently (reference §G.2, #404).

Loading is all-or-nothing: every file is read, interpolated, parsed and
checked, then the merged result is cross-checked, before anything is
returned, so a bad overlay can never half-apply or reach ``state/``. Every
error is one ``InvalidInput`` line naming ``file:line`` and the field path,
because an operator fixing YAML needs to know where, not a stack trace. Lines
come from PyYAML's node tree (``yaml.compose``), which keeps the marks that
``safe_load`` throws away.

``${VAR}`` interpolation runs on the raw text before YAML parsing (as in the
original), line by line so lines keep their numbers, and never inside ``#``
comments. The compiled form, ``state/workflow-config.v1.json``, is a
versioned JSON snapshot written atomically; deleting it is always safe.

This module is longer than most: discovery, interpolation, the node-level
schema and the cross-checks are one pipeline with one error shape.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from animus.errors import InvalidInput, NotFound
from animus.workflow.conditions import parse_condition
from animus.workflow.defaults import DEFAULTS_YAML, EMBEDDED_SOURCE
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
    WorkflowConfig,
    WorkflowDefinition,
    config_from_plain,
    to_plain,
)

__all__ = [
    "COMPILED_FILE",
    "SCHEMA",
    "compile_config",
    "interpolate",
    "load_workflow_config",
    "load_workflow_texts",
    "read_compiled",
    "refresh_compiled",
    "workflow_files",
    "write_compiled",
]

SCHEMA = "animus.workflow.compiled.v1"
COMPILED_FILE = "workflow-config.v1.json"
E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")

# ---------------------------------------------------------------- interpolation

_REF = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<inner>[^}\n]*)\}|(?P<open>\{))")
_INNER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)(.*))?")
_BLOCK = re.compile(r"(?:^|[\s:\-])[|>][-+0-9]*\s*$")
_INTERP_FIX = "use ${NAME}, ${NAME:-default}, ${NAME:?message}, or $$ for a literal $"


def _comment_at(line: str) -> int:
    """Index where a ``#`` comment starts (outside quotes), or len(line)."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote and not (quote == '"' and line[i - 1] == "\\"):
                quote = ""
        elif ch in "'\"" and (i == 0 or line[i - 1] in " \t[{,:-"):
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
    return len(line)


def _substitute(text: str, env: Mapping[str, str], src: str, line: int) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group("dollar"):
            return "$"
        inner = m.group("inner")
        parsed = None if inner is None else _INNER.fullmatch(inner)
        if parsed is None:
            what = "unterminated ${" if inner is None else f"bad variable reference ${{{inner}}}"
            raise InvalidInput(f"{src}:{line}: {what}", fix=_INTERP_FIX)
        name, op, arg = parsed.groups()
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == ":?" and not value:
            raise InvalidInput(f"{src}:{line}: ${{{name}}}: {arg or 'must be set'}",
                               fix=f"export {name}=<value>")
        if value is None:
            raise InvalidInput(f"{src}:{line}: ${{{name}}} is not set",
                               fix=f"export {name}=<value>, or write ${{{name}:-default}}")
        return value

    return _REF.sub(one, text)


def interpolate(text: str, env: Mapping[str, str], src: str) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}``, ``${VAR:?msg}`` and ``$$``, skipping comments."""
    out: list[str] = []
    block_indent: int | None = None  # inside a block scalar (| or >), '#' is text
    for number, raw in enumerate(text.splitlines(keepends=True), 1):
        body = raw.rstrip("\r\n")
        indent = len(body) - len(body.lstrip(" "))
        if block_indent is not None and (not body.strip() or indent > block_indent):
            out.append(_substitute(raw, env, src, number))
            continue
        cut = _comment_at(body)
        block_indent = indent if _BLOCK.search(body[:cut]) else None
        out.append(_substitute(raw[:cut], env, src, number) + raw[cut:])
    return "".join(out)


# ------------------------------------------------------------------- node layer

_NULL, _STR = "tag:yaml.org,2002:null", "tag:yaml.org,2002:str"
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@+-]*$")
_VERDICTS = [v.value for v in Verdict]


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _absent(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _one_line(text: str, limit: int = 400) -> str:
    """Messages are one line: control characters are escaped, long text is cut."""
    flat = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _show(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "null"
    text = _one_line(str(node.value), 60)
    return f"'{text}'" if node.tag == _STR else text


def _hint(word: str, choices: Collection[str]) -> str:
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{found[0]}'?)" if found else ""


_MAX_PHASES = 1000
_MAX_VALUES = 100_000  # YAML aliases can expand exponentially ("billion laughs")


def _jsonable(value: Any, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"expands to more than {_MAX_VALUES} values (aliases?)")
    if isinstance(value, dict):
        return {str(k): _jsonable(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v, budget) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ValueError(f"unsupported value of type {type(value).__name__}")


def _cron_ok(expr: str) -> bool:
    expr = expr.strip()
    if not (expr.startswith("@") or len(expr.split()) == 5):
        return False
    try:
        from croniter import croniter  # imported here: runners read compiled config without it

        return bool(croniter.is_valid(expr))
    except Exception:  # noqa: BLE001 - croniter raises assorted types; all mean "invalid"
        return False


# *_IGNORED: keys the original defines that Animus does not model (yet). They are
# accepted so existing files load; any other unknown key is an error with a hint.
_TOP = {"agents", "phases", "workflows", "pipelines", "schedules", "triggers", "default_workflow_ref",
        "daemon"}
_TOP_IGNORED = {"mcp_servers", "agent_channels", "models", "phase_catalog", "variables",
                "tools_allowlist", "tools", "phase_mcp_bindings", "integrations",
                "secrets", "worktree"}
_AGENT = {"tool", "provider", "model", "system_prompt", "system_prompt_file", "fallback_provider"}
_AGENT_IGNORED = {"name", "description", "role", "persona", "memory", "communication", "models",
                  "tool_profile", "mcp_servers", "mcp_server_configs", "skills", "capabilities",
                  "structured_capabilities", "tool_policy", "project_overrides",
                  "reasoning_effort", "approval_policy"}
_PHASE = {"mode", "agent", "agent_id", "directive", "system_prompt", "command", "manual",
          "decision_contract", "idempotency", "timeout_secs", "retry"}
_PHASE_IGNORED = {"skills", "runtime", "capabilities", "output_contract", "output_json_schema",
                  "default_tool", "worktree"}
_COMMAND = {"program", "args", "env", "cwd_mode", "cwd_path", "timeout_secs", "success_exit_codes"}
_COMMAND_IGNORED = {"parse_json_output", "expected_result_kind", "expected_schema", "category",
                    "failure_pattern", "excerpt_max_chars", "on_success_verdict",
                    "on_failure_verdict", "confidence", "failure_risk"}
_CONTRACT = {"min_confidence", "max_risk", "allow_missing_decision", "required_evidence"}
_WORKFLOW = {"id", "name", "description", "phases", "budget"}
_WORKFLOW_IGNORED = {"post_success", "variables", "worktree"}
_ENTRY = {"max_rework_attempts", "skip_if", "on_verdict"}
_TARGET_IGNORED = {"guard", "allow_agent_target", "allowed_targets"}
_SCHEDULE = {"id", "cron", "workflow_ref", "enabled", "input"}
_TRIGGER = {"id", "type", "workflow_ref", "enabled", "config", "input"}
_TRIGGER_TYPES = {"cron": TriggerType.CRON, "file_watcher": TriggerType.FILE_WATCHER,
                  "webhook": TriggerType.WEBHOOK, "github_webhook": TriggerType.WEBHOOK}
_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Ref:
    """A ``- workflow_ref: <id>`` entry; inlined once every file is merged."""

    ref: str


@dataclass
class _RawWorkflow:
    path: str
    name: str | None
    description: str | None
    budget: Budget | None
    items: list[PhaseEntry | _Ref]


@dataclass
class _Layer:
    """One file's definitions, plus where each cross-checked field was written."""

    agents: dict[str, AgentProfile] = field(default_factory=dict)
    phases: dict[str, PhaseDefinition] = field(default_factory=dict)
    workflows: dict[str, _RawWorkflow] = field(default_factory=dict)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    triggers: dict[str, Trigger] = field(default_factory=dict)
    default_ref: str | None = None
    daemon: dict[str, Any] = field(default_factory=dict)
    locs: dict[str, tuple[str, int]] = field(default_factory=dict)


class _Parser:
    """Turns one file's node tree into a ``_Layer``, raising located errors."""

    def __init__(self, src: str, root: Path | None) -> None:
        self.src, self.root = src, root
        self.layer = _Layer()
        self._ctor = SafeConstructor()
        self._key_line: dict[int, int] = {}  # id(value node) -> line of its key

    def err(self, at: Node | int, path: str, msg: str, fix: str | None = None) -> InvalidInput:
        if isinstance(at, int):
            line = at
        else:  # a block mapping or list starts a line below its key; point at the key
            line = self._key_line.get(id(at), _line(at))
            line = _line(at) if isinstance(at, ScalarNode) else line
        where = f"{path}: " if path else ""
        return InvalidInput(_one_line(f"{self.src}:{line}: {where}{msg}"), fix=fix,
                            details={"file": self.src, "line": line, "field": path})

    def note(self, path: str, node: Node) -> None:
        self.layer.locs[path] = (self.src, _line(node))

    def items(self, node: Node, path: str) -> list[tuple[str, Node, Node]]:
        if _absent(node):
            return []
        if not isinstance(node, MappingNode):
            raise self.err(node, path, f"expected a mapping, got {_show(node)}",
                           fix="write key: value pairs here, indented under the parent key")
        self._ctor.flatten_mapping(node)  # resolve '<<' merge keys in place
        seen: set[str] = set()
        out: list[tuple[str, Node, Node]] = []
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                raise self.err(k, path, "keys must be plain strings",
                               fix="use a plain name such as build or review as the key")
            key = str(k.value)
            if key in seen:
                raise self.err(k, f"{path}.{key}".lstrip("."), "duplicate key in this file",
                               fix="keep one definition (later files may override earlier ones)")
            seen.add(key)
            self._key_line[id(v)] = _line(k)
            out.append((key, k, v))
        return out

    def fields(self, node: Node, path: str, allowed: Collection[str],
               ignored: Collection[str] = _NONE, required: Sequence[str] = ()) -> dict[str, Node]:
        out: dict[str, Node] = {}
        for key, k, v in self.items(node, path):
            if key not in allowed and key not in ignored:
                raise self.err(k, f"{path}.{key}".lstrip("."),
                               "unknown key" + _hint(key, [*allowed, *ignored]),
                               fix="known keys here: " + ", ".join(sorted(allowed)))
            if key in allowed and not _absent(v):  # null means "not given"
                out[key] = v
        for name in required:
            if name not in out:
                raise self.err(node, path, f"missing required key '{name}'",
                               fix=f"add {name}: <value> here")
        return out

    def opt(self, f: dict[str, Node], key: str, path: str,
            parse: Callable[[Node, str], T], default: T) -> T:
        return parse(f[key], f"{path}.{key}") if key in f else default

    def alias(self, f: dict[str, Node], path: str, a: str, b: str) -> Node | None:
        if a in f and b in f:
            raise self.err(f[b], f"{path}.{b}", f"give {a} or {b}, not both",
                           fix=f"{b} is another name for {a}; keep one")
        return f[a] if a in f else f.get(b)

    def build(self, at: Node | int, path: str, factory: Callable[..., T], **kwargs: Any) -> T:
        try:
            return factory(**kwargs)
        except InvalidInput as exc:  # the model's own combination checks, now located
            raise self.err(at, path, exc.message, exc.fix) from None

    # scalars ---------------------------------------------------------------

    def text(self, node: Node, path: str) -> str:
        if not isinstance(node, ScalarNode) or _absent(node):
            raise self.err(node, path, f"expected a string, got {_show(node)}",
                           fix="write a single value here; quote it if it contains : or #")
        return str(node.value)

    def ident(self, node: Node, path: str, what: str = "an id") -> str:
        value = self.text(node, path)
        if not _ID.match(value):
            raise self.err(node, path, f"expected {what}, got {_show(node)}",
                           fix="ids use letters, digits and _ . : / - (no spaces)")
        return value

    def _scalar(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            return None
        return self._ctor.construct_object(node, deep=True)

    def integer(self, node: Node, path: str, minimum: int = 1) -> int:
        value = self._scalar(node)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, "an integer")
            raise self.err(node, path, f"expected {kind}, got {_show(node)}",
                           fix="write a whole number without quotes"
                               + (", 1 or more" if minimum == 1 else ""))
        return value

    def number(self, node: Node, path: str, lo: float, hi: float = math.inf) -> float:
        value = self._scalar(node)
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or not lo <= value <= hi):
            span = f"between {lo:g} and {hi:g}" if math.isfinite(hi) else f">= {lo:g}"
            raise self.err(node, path, f"expected a number {span}, got {_show(node)}",
                           fix=f"write a plain number {span}, without quotes")
        return float(value)

    def boolean(self, node: Node, path: str) -> bool:
        value = self._scalar(node)
        if not isinstance(value, bool):
            raise self.err(node, path, f"expected true or false, got {_show(node)}",
                           fix="write true or false, without quotes")
        return value

    def choice(self, node: Node, path: str, enum: type[E]) -> E:
        value = self.text(node, path)
        names = [e.value for e in enum]
        if value not in names:
            raise self.err(node, path, f"expected one of {', '.join(names)}, got {_show(node)}"
                           + _hint(value, names), fix=f"use one of: {', '.join(names)}")
        return enum(value)

    def seq(self, node: Node, path: str, single_ok: bool = False) -> list[Node]:
        if single_ok and isinstance(node, ScalarNode) and not _absent(node):
            return [node]
        if not isinstance(node, SequenceNode):
            raise self.err(node, path, f"expected a list, got {_show(node)}",
                           fix="write a list: [a, b] or one '- item' per line")
        return list(node.value)

    def texts(self, node: Node, path: str) -> tuple[str, ...]:
        return tuple(self.text(n, f"{path}[{i}]") for i, n in enumerate(self.seq(node, path)))

    def plain(self, node: Node, path: str) -> dict[str, Any]:
        """A free-form mapping (daemon settings, schedule input) as JSON-ready data."""
        if not isinstance(node, MappingNode):
            raise self.err(node, path, f"expected a mapping, got {_show(node)}",
                           fix="write key: value pairs here")
        try:
            return dict(_jsonable(self._ctor.construct_object(node, deep=True), [_MAX_VALUES]))
        except ValueError as exc:
            raise self.err(node, path, str(exc),
                           fix="use plain strings, numbers, booleans, lists and mappings") from None

    # sections --------------------------------------------------------------

    def file(self, doc: Node | None) -> _Layer:
        if doc is None:  # empty file, or comments only
            return self.layer
        # 'x-' keys hold YAML anchors for reuse, as in docker-compose files.
        extensions = {name for name, _, _ in self.items(doc, "") if name.startswith("x-")}
        top = self.fields(doc, "", _TOP, _TOP_IGNORED | extensions)
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
        return self.layer

    def agents(self, node: Node) -> None:
        for aid, k, v in self.items(node, "agents"):
            path = f"agents.{aid}"
            self.ident(k, path, "an agent id")
            f = self.fields(v, path, _AGENT, _AGENT_IGNORED)
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
                fallback_provider=self.opt(f, "fallback_provider", path, self.ident, None))

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
            f = self.fields(v, path, _PHASE, _PHASE_IGNORED, required=("mode",))
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
                retry=self.opt(f, "retry", path, self.retry, None))

    def command(self, node: Node, path: str) -> CommandSpec:
        f = self.fields(node, path, _COMMAND, _COMMAND_IGNORED, required=("program",))
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
        f = self.fields(node, path, _CONTRACT, {"extra_json_schema", "fields"})
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
            f = self.fields(item, f"{key}[{i}]", _WORKFLOW, _WORKFLOW_IGNORED,
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
            self.layer.workflows[wid] = _RawWorkflow(
                path, self.opt(f, "name", path, self.text, None),
                self.opt(f, "description", path, self.text, None),
                self.opt(f, "budget", path, self.budget, None),
                [self.entry(n, f"{path}.phases[{j}]") for j, n in enumerate(nodes)])

    def entry(self, node: Node, path: str) -> PhaseEntry | _Ref:
        """An entry: ``p``, ``{p: {...}}``, ``{id: p, ...}`` or ``{workflow_ref: <id>}``."""
        self.note(path, node)
        if isinstance(node, ScalarNode):
            return PhaseEntry(self.ident(node, path, "a phase id"))
        pairs = self.items(node, path)
        names = [name for name, _, _ in pairs]
        if "id" in names:
            f = self.fields(node, path, {*_ENTRY, "id"}, required=("id",))
            pid = self.ident(f["id"], f"{path}.id", "a phase id")
        elif names == ["workflow_ref"]:
            return _Ref(self.ident(pairs[0][2], f"{path}.workflow_ref", "a workflow id"))
        elif len(pairs) == 1:
            pid = self.ident(pairs[0][1], path, "a phase id")
            f = self.fields(pairs[0][2], path, _ENTRY)
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
            if verdict not in _VERDICTS:
                raise self.err(k, vpath, "unknown verdict" + _hint(verdict, _VERDICTS),
                               fix="use advance, rework, skip or fail")
            target = v if isinstance(v, ScalarNode) else self.fields(
                v, vpath, {"target"}, _TARGET_IGNORED).get("target")
            if target is None or _absent(target):
                continue
            name = self.text(target, f"{vpath}.target")
            if name and not _ID.match(name):
                raise self.err(target, f"{vpath}.target",
                               f"expected a phase id, got {_show(target)}",
                               fix='name a phase of this workflow, or "" to end the workflow')
            routes[verdict] = name
            self.note(f"{vpath}.target", target)
        return routes

    def schedules(self, node: Node) -> None:
        for i, item in enumerate(self.seq(node, "schedules")):
            f = self.fields(item, f"schedules[{i}]", _SCHEDULE, required=("id", "cron"))
            sid = self.ident(f["id"], f"schedules[{i}].id", "a schedule id")
            path = f"schedules.{sid}"
            self.note(path, f["id"])
            if sid in self.layer.schedules:
                raise self.err(f["id"], path, f"duplicate schedule id '{sid}' in this file",
                               fix="give each schedule its own id")
            cron = self.text(f["cron"], f"{path}.cron")
            if not _cron_ok(cron):
                raise self.err(f["cron"], f"{path}.cron",
                               f"expected a 5-field cron expression, got {_show(f['cron'])}",
                               fix="e.g. '0 2 * * *' (02:00 daily) or @hourly")
            ref = self.opt(f, "workflow_ref", path, self.ident, None)
            if ref is not None:
                self.note(f"{path}.workflow_ref", f["workflow_ref"])
            self.layer.schedules[sid] = Schedule(
                sid, cron, ref, self.opt(f, "enabled", path, self.boolean, True),
                self.opt(f, "input", path, self.plain, {}))


    def triggers(self, node: Node) -> None:
        for i, item in enumerate(self.seq(node, "triggers")):
            f = self.fields(item, f"triggers[{i}]", _TRIGGER, required=("id", "type"))
            tid = self.ident(f["id"], f"triggers[{i}].id", "a trigger id")
            path = f"triggers.{tid}"
            self.note(path, f["id"])
            if tid in self.layer.triggers:
                raise self.err(f["id"], path, f"duplicate trigger id '{tid}' in this file",
                               fix="give each trigger its own id")
            kind = self.text(f["type"], f"{path}.type")
            if kind not in _TRIGGER_TYPES:
                raise self.err(f["type"], f"{path}.type", f"unknown trigger type {_show(f['type'])}"
                               + _hint(kind, _TRIGGER_TYPES), fix="use cron, file_watcher or webhook")
            config: dict[str, Any] = self.opt(f, "config", path, self.plain, {})
            cron = config.get("cron")
            if _TRIGGER_TYPES[kind] is TriggerType.CRON and isinstance(cron, str) and not _cron_ok(cron):
                raise self.err(f["config"], f"{path}.config.cron",
                               f"expected a 5-field cron expression, got '{cron}'",
                               fix="e.g. '0 2 * * *' (02:00 daily) or @hourly")
            ref = self.opt(f, "workflow_ref", path, self.ident, None)
            if ref is not None:
                self.note(f"{path}.workflow_ref", f["workflow_ref"])
            trigger_input: dict[str, Any] = self.opt(f, "input", path, self.plain, {})
            self.layer.triggers[tid] = self.build(
                f["id"], path, Trigger, id=tid, type=_TRIGGER_TYPES[kind], workflow_ref=ref,
                enabled=self.opt(f, "enabled", path, self.boolean, True), config=config,
                input=trigger_input)


# -------------------------------------------------------------- merge and check

def _parse(text: str, src: str, env: Mapping[str, str], root: Path | None) -> _Layer:
    expanded = interpolate(text, env, src)
    try:
        return _Parser(src, root).file(yaml.compose(expanded, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed document"
        if problem.startswith("but ") and exc.context:  # "expected a single document ... but found"
            problem = f"{exc.context} {problem}"
        line = mark.line + 1 if mark else 1
        raise InvalidInput(_one_line(f"{src}:{line}: invalid YAML: {problem}"),
                           fix="check the indentation and quoting on that line") from None
    except yaml.YAMLError as exc:  # ReaderError: a character YAML does not allow
        pos = getattr(exc, "position", 0)
        line = expanded.count("\n", 0, pos) + 1
        raise InvalidInput(_one_line(f"{src}:{line}: invalid YAML: {getattr(exc, 'reason', exc)}"),
                           fix="remove control characters; the file must be UTF-8 text") from None
    except RecursionError:
        raise InvalidInput(f"{src}:1: invalid YAML: nested too deeply") from None


def _combine(layers: Sequence[_Layer], sources: tuple[str, ...]) -> WorkflowConfig:
    """Merge layers in order (later ids win) and check every cross-reference."""
    merged = _Layer()
    for layer in layers:
        merged.agents.update(layer.agents)
        merged.phases.update(layer.phases)
        merged.workflows.update(layer.workflows)
        merged.schedules.update(layer.schedules)
        merged.triggers.update(layer.triggers)
        merged.daemon.update(layer.daemon)
        merged.locs.update(layer.locs)
        merged.default_ref = layer.default_ref or merged.default_ref

    def err(path: str, msg: str, fix: str | None = None) -> InvalidInput:
        src, line = merged.locs.get(path, (sources[-1] if sources else "<config>", 1))
        return InvalidInput(_one_line(f"{src}:{line}: {path}: {msg}"), fix=fix,
                            details={"file": src, "line": line, "field": path})

    for pid, phase in merged.phases.items():
        if phase.agent is not None and phase.agent not in merged.agents:
            raise err(f"phases.{pid}.agent", f"unknown agent '{phase.agent}'"
                      + _hint(phase.agent, merged.agents), fix="define it under agents:")

    def expand(raw: _RawWorkflow, stack: tuple[str, ...]) -> list[PhaseEntry]:
        out: list[PhaseEntry] = []
        for i, item in enumerate(raw.items):
            here = f"{raw.path}.phases[{i}]"
            if isinstance(item, PhaseEntry):
                if item.phase_id not in merged.phases:
                    raise err(here, f"unknown phase '{item.phase_id}'"
                              + _hint(item.phase_id, merged.phases), fix="define it under phases:")
                out.append(item)
            elif item.ref not in merged.workflows:
                raise err(here, f"unknown workflow_ref '{item.ref}'"
                          + _hint(item.ref, merged.workflows), fix="define it under workflows:")
            elif item.ref in stack:
                raise err(here, "workflow_ref cycle: " + " -> ".join((*stack, item.ref)),
                          fix="a workflow cannot include itself, directly or indirectly")
            else:
                out.extend(expand(merged.workflows[item.ref], (*stack, item.ref)))
                if len(out) > _MAX_PHASES:
                    raise err(here, f"workflow expands to more than {_MAX_PHASES} phases",
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
                              f"'{target}' is not a phase of workflow '{wid}'" + _hint(target, ids),
                              fix='name a phase of this workflow, or "" to end the workflow')
        workflows[wid] = WorkflowDefinition(wid, tuple(entries), raw.name, raw.description,
                                            raw.budget)

    default_ref = merged.default_ref or next(iter(workflows), None)
    if default_ref is not None and default_ref not in workflows:
        raise err("default_workflow_ref", f"unknown workflow '{default_ref}'"
                  + _hint(default_ref, workflows), fix="name a workflow defined under workflows:")
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
                          + _hint(ref, workflows), fix="name a workflow defined under workflows:")
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
    return _combine(layers, tuple(src for src, _ in texts))


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
            raise InvalidInput(_one_line(f"{src}:1: cannot read: {exc}"),
                               fix="check the file's permissions; it must be UTF-8 text") from None
    return load_workflow_texts(texts, env, project_root)


# -------------------------------------------------------------------- compiled

def _canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compile_config(cfg: WorkflowConfig) -> dict[str, Any]:
    """The versioned, JSON-ready form of ``cfg``, with a hash of its content."""
    body = to_plain(cfg)
    return {"schema": SCHEMA, "hash": "sha256:" + hashlib.sha256(_canonical(body)).hexdigest(),
            **body}


def write_compiled(cfg: WorkflowConfig, state_dir: Path) -> Path:
    """Write ``state_dir/workflow-config.v1.json`` atomically (tmp, fsync, rename)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_dir / COMPILED_FILE
    data = json.dumps(compile_config(cfg), indent=2, sort_keys=True).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{COMPILED_FILE}.", suffix=".tmp", dir=state_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return target


def read_compiled(state_dir: Path) -> WorkflowConfig:
    """Read back what ``write_compiled`` wrote; a damaged file is reported, not guessed at."""
    path = state_dir / COMPILED_FILE
    fix = f"delete {path}; the daemon rebuilds it from the YAML at start"
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist", fix="start the daemon to compile it") from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: unreadable compiled config: {exc}", fix=fix) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise InvalidInput(f"{path}: schema {found!r} is not {SCHEMA}", fix=fix)
    body = {k: v for k, v in data.items() if k not in ("schema", "hash")}
    if data.get("hash") != "sha256:" + hashlib.sha256(_canonical(body)).hexdigest():
        raise InvalidInput(f"{path}: content does not match its hash", fix=fix)
    try:
        return config_from_plain(body)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidInput) as exc:
        raise InvalidInput(f"{path}: malformed compiled config: {exc!r}", fix=fix) from None


def refresh_compiled(project_root: Path, env: Mapping[str, str], state_dir: Path) -> WorkflowConfig:
    """Load and validate every file, then write the compiled config; nothing on failure."""
    cfg = load_workflow_config(project_root, env)
    write_compiled(cfg, state_dir)
    return cfg
