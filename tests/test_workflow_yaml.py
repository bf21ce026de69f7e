"""Workflow YAML: loading, merging, interpolation, validation messages, compiling."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from animus.errors import InvalidInput, NotFound
from animus.workflow.defaults import EMBEDDED_SOURCE
from animus.workflow.config import (
    COMPILED_FILE,
    SCHEMA,
    compile_config,
    interpolate,
    load_workflow_config,
    load_workflow_texts,
    read_compiled,
    refresh_compiled,
    write_compiled,
)
from animus.workflow.model import (
    CwdMode,
    Idempotency,
    Mode,
    Risk,
    WorkflowConfig,
)

MAIN = ".animus/workflows.yaml"

# The reference's §B.7 example, made valid: the schedule names a workflow that exists.
B7_EXAMPLE = """\
agents:
  builder:   { model: claude-sonnet-4-6, tool: claude, mcp_servers: [animus] }
  reviewer:  { model: claude-opus-4-6,   tool: claude, system_prompt: "Review only; never edit." }
phases:
  implement:
    mode: agent
    agent: builder
    directive: Implement the task with focused changes.
    idempotency: sideeffecting          # v0.4.12 field, per runbook
    output_contract: { kind: implementation_result, required_fields: [commit_message] }
    decision_contract: { min_confidence: 0.7, max_risk: medium, allow_missing_decision: false }
  tests:
    mode: command
    idempotency: idempotent
    command: { program: cargo, args: [test, --workspace], cwd_mode: task_root, timeout_secs: 600, success_exit_codes: [0] }
    output_contract: { kind: phase_result, fields: { exit_code: { type: integer } } }
  review:
    mode: agent
    agent: reviewer
    decision_contract:
      required_evidence: [code_review_clean]
      fields: { blocking_issues: { type: array, items: { type: string }, description: "What must change" } }
workflows:
  - id: reviewed-delivery
    phases:
      - implement
      - tests:  { on_verdict: { rework: { target: implement } } }
      - review: { max_rework_attempts: 2, on_verdict: { rework: { target: implement } } }
    post_success: { merge: { strategy: squash, target_branch: main, create_pr: true, cleanup_worktree: true } }
schedules:
  - { id: nightly-planner, cron: "0 2 * * *", workflow_ref: reviewed-delivery, enabled: true }
"""

SMALL = """\
phases:
  build:
    mode: command
    command:
      program: make
      timeout_secs: 10
workflows:
  - id: main
    phases: [build]
"""


def put(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(textwrap.dedent(text).splitlines(), 1) if needle in line)


def error_of(root: Path, env: dict[str, str] | None = None) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        load_workflow_config(root, env or {})
    assert "\n" not in info.value.message
    return info.value


# ------------------------------------------------------------------ valid files

def test_no_files_gives_embedded_defaults_that_need_no_provider(tmp_path: Path) -> None:
    cfg = load_workflow_config(tmp_path, {})
    assert cfg.sources == (EMBEDDED_SOURCE,)
    assert cfg.default_workflow_ref == "standard"
    standard = cfg.workflow()
    assert [e.phase_id for e in standard.phases] == ["plan", "build", "check"]
    for entry in standard.phases:
        phase = cfg.phases[entry.phase_id]
        assert phase.mode is Mode.COMMAND and phase.idempotency is Idempotency.IDEMPOTENT
        assert phase.command is not None
        done = subprocess.run([phase.command.program, *phase.command.args],
                              capture_output=True, text=True, timeout=10, check=True)
        assert done.stdout.startswith(f"{entry.phase_id}:")
    delivery = cfg.workflow("agent-delivery")
    assert delivery.phases[1].on_verdict == {"rework": "implement"}
    agents = {cfg.phases[e.phase_id].agent or "" for e in delivery.phases}
    assert {cfg.agents[a].provider for a in agents} == {"claude"}


def test_reference_b7_example_loads(tmp_path: Path) -> None:
    put(tmp_path, MAIN, B7_EXAMPLE)
    cfg = load_workflow_config(tmp_path, {})
    assert cfg.sources == (MAIN,)
    assert cfg.agents["builder"].provider == "claude"
    assert cfg.agents["reviewer"].system_prompt == "Review only; never edit."
    impl, tests, review = (cfg.phases[p] for p in ("implement", "tests", "review"))
    assert impl.idempotency is Idempotency.SIDEEFFECTING
    assert impl.decision_contract.min_confidence == 0.7
    assert impl.decision_contract.allow_missing_decision is False
    assert tests.command is not None and tests.command.args == ("test", "--workspace")
    assert tests.command.cwd_mode is CwdMode.TASK_ROOT and tests.command.timeout_secs == 600
    assert review.idempotency is Idempotency.UNKNOWN
    assert review.decision_contract.required_evidence == ("code_review_clean",)
    assert review.decision_contract.max_risk is Risk.MEDIUM
    wf = cfg.workflow()
    assert wf.id == "reviewed-delivery" == cfg.default_workflow_ref
    assert [(e.phase_id, e.max_rework_attempts, e.on_verdict) for e in wf.phases] == [
        ("implement", 3, {}),
        ("tests", 3, {"rework": "implement"}),
        ("review", 2, {"rework": "implement"}),
    ]
    assert cfg.schedules[0].cron == "0 2 * * *" and cfg.schedules[0].enabled


def test_entry_forms_and_aliases(tmp_path: Path) -> None:
    put(tmp_path, MAIN, """\
        default_workflow_ref: full
        mcp_servers: { github: { command: npx, args: [-y, server-github] } }
        phase_catalog: { a: { label: A } }
        models: { fast: { model: x } }
        agents:
          writer: { provider: codex, fallback_provider: claude }
        phases:
          a:
            mode: agent
            agent_id: writer
            timeout_secs: 30
            retry: { max_attempts: 2, backoff: { initial_secs: 2, factor: 3, max_secs: 10 } }
          b: { mode: manual, manual: { instructions: Approve it, approval_note_required: true } }
          c: { mode: manual }
        pipelines:
          - id: inner
            phases: [b, c]
          - id: full
            budget: { max_cost_usd: 2.5, max_tokens: 1000 }
            phases:
              - a
              - b:
              - id: c
                skip_if: task_type == docs
                on_verdict: { fail: "", skip: { target: a, guard: x } }
              - workflow_ref: inner
              - a: { max_rework_attempts: 0, on_verdict: { rework: b } }
        """)
    cfg = load_workflow_config(tmp_path, {})
    assert cfg.agents["writer"].provider == "codex"
    assert cfg.agents["writer"].fallback_provider == "claude"
    a = cfg.phases["a"]
    assert a.agent == "writer" and a.timeout_secs == 30
    assert a.retry is not None and [a.retry.delay_secs(n) for n in (1, 2, 3)] == [2, 6, 10]
    assert cfg.phases["b"].manual is not None and cfg.phases["b"].manual.approval_note_required
    assert cfg.phases["c"].manual is not None and cfg.phases["c"].manual.instructions == ""
    full = cfg.workflow()
    assert [e.phase_id for e in full.phases] == ["a", "b", "c", "b", "c", "a"]
    assert full.phases[2].skip_if == ("task_type == docs",)
    assert full.phases[2].on_verdict == {"fail": "", "skip": "a"}
    assert full.phases[5].on_verdict == {"rework": "b"} and full.phases[5].max_rework_attempts == 0
    assert full.budget is not None and full.budget.max_cost_usd == 2.5


def test_system_prompt_file_is_read_from_the_project(tmp_path: Path) -> None:
    put(tmp_path, "prompts/review.md", "Be strict.\n")
    put(tmp_path, MAIN, "agents: { r: { tool: claude, system_prompt_file: prompts/review.md } }\n")
    assert load_workflow_config(tmp_path, {}).agents["r"].system_prompt == "Be strict.\n"


def test_later_files_override_by_id(tmp_path: Path) -> None:
    put(tmp_path, MAIN, SMALL + "schedules:\n  - { id: nightly, cron: '0 2 * * *' }\n"
        "daemon: { interval_secs: 5, pool_size: 2 }\n")
    put(tmp_path, ".animus/workflows/20-late.yaml", """\
        phases:
          build: { mode: command, command: { program: make, args: [all], timeout_secs: 99 } }
        workflows:
          - id: main
            phases: [build, lint]
        daemon: { pool_size: 4 }
        """)
    put(tmp_path, ".animus/workflows/10-early.yaml", """\
        phases:
          lint: { mode: command, idempotency: idempotent, command: { program: ruff } }
        workflows:
          - { id: extra, phases: [lint] }
        default_workflow_ref: extra
        """)
    put(tmp_path, ".animus/workflows/notes.txt", "not yaml: [")
    cfg = load_workflow_config(tmp_path, {})
    assert cfg.sources == (
        MAIN, ".animus/workflows/10-early.yaml", ".animus/workflows/20-late.yaml")
    build = cfg.phases["build"].command
    assert build is not None and build.timeout_secs == 99 and build.args == ("all",)
    assert [e.phase_id for e in cfg.workflows["main"].phases] == ["build", "lint"]
    assert list(cfg.workflows) == ["main", "extra"]
    assert cfg.default_workflow_ref == "extra"
    assert cfg.daemon == {"interval_secs": 5, "pool_size": 4}
    assert cfg.schedules[0].workflow_ref is None


# ---------------------------------------------------------------- interpolation

def test_interpolation_forms() -> None:
    env = {"MODEL": "opus", "EMPTY": ""}
    text = ("a: ${MODEL}\nb: ${UNSET:-fallback}\nc: ${EMPTY:-dflt}\nd: ${MODEL:?needed}\n"
            "e: cost $$5 and $HOME\nf: ${EMPTY}\n")
    assert interpolate(text, env, "f.yaml") == (
        "a: opus\nb: fallback\nc: dflt\nd: opus\ne: cost $5 and $HOME\nf: \n")


def test_interpolation_skips_comments_but_not_quotes_or_block_text() -> None:
    text = ('a: x  # uses ${NOT_SET}\n# ${ALSO_NOT_SET}\nb: "#tag ${V}"\n'
            "c: |\n  # heading ${V}\n  text\nd: e # ${NOPE}\n")
    assert interpolate(text, {"V": "v"}, "f.yaml") == (
        'a: x  # uses ${NOT_SET}\n# ${ALSO_NOT_SET}\nb: "#tag v"\n'
        "c: |\n  # heading v\n  text\nd: e # ${NOPE}\n")


@pytest.mark.parametrize(("line", "message", "fix"), [
    ("x: ${MISSING}", "f.yaml:2: ${MISSING} is not set", "export MISSING=<value>"),
    ("x: ${TOKEN:?set TOKEN to your API token}", "f.yaml:2: ${TOKEN}: set TOKEN to your API token",
     "export TOKEN=<value>"),
    ("x: ${1BAD}", "f.yaml:2: bad variable reference ${1BAD}", "$$"),
    ("x: ${OPEN", "f.yaml:2: unterminated ${", "$$"),
])
def test_interpolation_errors_name_file_and_line(line: str, message: str, fix: str) -> None:
    with pytest.raises(InvalidInput) as info:
        interpolate(f"ok: 1\n{line}\n", {}, "f.yaml")
    assert info.value.message == message
    assert fix in (info.value.fix or "")


def test_interpolation_happens_before_parsing(tmp_path: Path) -> None:
    put(tmp_path, MAIN, SMALL.replace("timeout_secs: 10", "timeout_secs: ${T:-15}")
        .replace("program: make", "program: ${MAKE}"))
    cfg = load_workflow_config(tmp_path, {"MAKE": "gmake"})
    assert cfg.phases["build"].command == cfg.phases["build"].command.__class__(
        "gmake", timeout_secs=15)
    err = error_of(tmp_path)
    assert err.message == f"{MAIN}:5: ${{MAKE}} is not set"


# ----------------------------------------------------------------------- errors

BAD_CASES: list[tuple[str, str, str, str]] = [
    # (id, yaml, line marker, expected message after "file:line: ")
    ("timeout-type", SMALL.replace("timeout_secs: 10", "timeout_secs: ten"), "timeout_secs",
     "phases.build.command.timeout_secs: expected a positive integer, got 'ten'"),
    ("timeout-zero", SMALL.replace("timeout_secs: 10", "timeout_secs: 0"), "timeout_secs",
     "phases.build.command.timeout_secs: expected a positive integer, got 0"),
    ("unknown-key", SMALL.replace("    command:", "    comand:"), "comand",
     "phases.build.comand: unknown key (did you mean 'command'?)"),
    ("unknown-top", SMALL.replace("workflows:", "workflow:"), "workflow:",
     "workflow: unknown key (did you mean 'workflows'?)"),
    ("bad-mode", SMALL.replace("mode: command", "mode: comand"), "mode:",
     ("phases.build.mode: expected one of agent, command, manual, got 'comand' "
     "(did you mean 'command'?)")),
    ("missing-mode", SMALL.replace("    mode: command\n", ""), "build:",
     "phases.build: missing required key 'mode'"),
    ("idempotency", SMALL.replace("mode: command", "mode: command\n    idempotency: idempotnt"),
     "idempotency", ("phases.build.idempotency: expected one of idempotent, sideeffecting, "
     "unknown, got 'idempotnt' (did you mean 'idempotent'?)")),
    ("no-command", "phases:\n  build:\n    mode: command\n", "build:",
     "phases.build: mode command needs a command block"),
    ("agent-needs-agent", "phases:\n  p:\n    mode: agent\n", "p:",
     "phases.p: mode agent needs an agent"),
    ("unknown-agent", ("agents: { builder: { tool: claude } }\n"
     "phases:\n  p:\n    mode: agent\n    agent: bulder\n"), "agent: bulder",
     "phases.p.agent: unknown agent 'bulder' (did you mean 'builder'?)"),
    ("tool-and-provider", "agents:\n  a:\n    tool: claude\n    provider: codex\n", "provider",
     "agents.a.provider: give tool or provider, not both"),
    ("cwd-path", SMALL.replace("program: make", "program: make\n      cwd_mode: path"), "command:",
     "phases.build.command: command.cwd_path is required with cwd_mode: path, and only then"),
    ("confidence",
     "phases:\n  p:\n    mode: manual\n    decision_contract: { min_confidence: 1.5 }\n",
     "decision_contract", ("phases.p.decision_contract.min_confidence: expected a number "
     "between 0 and 1, got 1.5")),
    ("unknown-phase", SMALL.replace("phases: [build]", "phases: [build, deploy]"), "deploy]",
     "workflows.main.phases[1]: unknown phase 'deploy'"),
    ("bad-entry", SMALL.replace("phases: [build]", "phases:\n      - { build: {}, x: {} }"),
     "build: {}", ("workflows.main.phases[0]: expected a phase id, {<phase>: {...}}, "
     "{id: <phase>, ...} or {workflow_ref: <workflow>}")),
    ("unknown-verdict", SMALL.replace("phases: [build]",
                                      "phases:\n      - build: { on_verdict: { redo: build } }"),
     "redo", "workflows.main.phases[0].on_verdict.redo: unknown verdict (did you mean 'rework'?)"),
    ("unknown-target", SMALL.replace("phases: [build]", "phases:\n      - build:\n"
                                     "          on_verdict: { rework: { target: implement } }"),
     "target: implement", ("workflows.main.phases[0].on_verdict.rework.target: "
     "'implement' is not a phase of workflow 'main'")),
    ("rework-count", SMALL.replace("phases: [build]",
                                   "phases:\n      - build: { max_rework_attempts: -1 }"),
     "max_rework", ("workflows.main.phases[0].max_rework_attempts: expected a non-negative "
     "integer, got -1")),
    ("skip-if", SMALL.replace("phases: [build]",
                              "phases:\n      - build: { skip_if: [task_type ~= docs] }"),
     "skip_if", ("workflows.main.phases[0].skip_if[0]: cannot parse skip_if expression "
     "'task_type ~= docs': unexpected '~'")),
    ("dup-phase", SMALL.replace("workflows:", "  build: { mode: manual }\nworkflows:"),
     "build: { mode", "phases.build: duplicate key in this file"),
    ("dup-top", SMALL + "phases: {}\n", "phases: {}", "phases: duplicate key in this file"),
    ("dup-workflow", SMALL + "  - { id: main, phases: [build] }\n", "- { id: main",
     "workflows.main: duplicate workflow id 'main' in this file"),
    ("default-ref", SMALL + "default_workflow_ref: mian\n", "default_workflow_ref",
     "default_workflow_ref: unknown workflow 'mian' (did you mean 'main'?)"),
    ("cron", SMALL + "schedules:\n  - { id: n, cron: '0 2 * *' }\n", "cron",
     "schedules.n.cron: expected a 5-field cron expression, got '0 2 * *'"),
    ("cron-range", SMALL + "schedules:\n  - { id: n, cron: '99 2 * * *' }\n", "cron",
     "schedules.n.cron: expected a 5-field cron expression, got '99 2 * * *'"),
    ("schedule-ref", SMALL + "schedules:\n  - { id: n, cron: '@daily', workflow_ref: nope }\n",
     "cron", "schedules.n.workflow_ref: unknown workflow 'nope'"),
    ("schedule-no-workflow", "schedules:\n  - { id: n, cron: '@daily' }\n", "id: n",
     "schedules.n: no workflow_ref and no workflow to default to"),
    ("dup-schedule", SMALL + "schedules:\n  - { id: n, cron: '@daily' }\n"
     "  - { id: n, cron: '@hourly' }\n", "@hourly",
     "schedules.n: duplicate schedule id 'n' in this file"),
    ("ref-cycle", SMALL + "  - { id: a, phases: [{workflow_ref: b}] }\n"
     "  - { id: b, phases: [{workflow_ref: a}] }\n", "id: b,",
     "workflows.b.phases[0]: workflow_ref cycle: a -> b -> a"),
    ("ref-unknown", SMALL + "  - { id: a, phases: [{workflow_ref: zz}] }\n", "id: a,",
     "workflows.a.phases[0]: unknown workflow_ref 'zz'"),
    ("bool", SMALL + "schedules:\n  - { id: n, cron: '@daily', enabled: sometimes }\n", "cron",
     "schedules.n.enabled: expected true or false, got 'sometimes'"),
    ("not-a-map", "- just\n- a list\n", "- just", "expected a mapping, got a list"),
    ("mcp-unknown", "agents:\n  a: { tool: claude, mcp_servers: [animus, gihtub] }\n", "gihtub",
     "agents.a.mcp_servers[1]: unknown MCP server 'gihtub'"),
    ("mcp-not-a-list", "agents:\n  a:\n    tool: claude\n    mcp_servers: animus\n", "mcp_servers",
     "agents.a.mcp_servers: expected a list, got 'animus'"),
    ("mcp-inline", "agents:\n  a:\n    tool: claude\n    mcp_servers:\n      - animus\n"
     "      - { s: { url: 'http://127.0.0.1:1/mcp' } }\n", "{ s:",
     "agents.a.mcp_servers[1]: mcp_servers.s: a stdio server needs a command and no url"),
    ("mcp-twice", "agents:\n  a:\n    tool: claude\n    mcp_servers:\n      - animus\n"
     "      - { animus: { tools: [subject_] } }\n", "{ animus:", "agents.a.mcp_servers[1]: MCP server 'animus' is listed twice"),
    ("mcp-args", "mcp_servers:\n  gh:\n    command: npx\n    args: -y\n", "args",
     "mcp_servers.gh.args: expected a list of strings"),
    ("mcp-transport", "mcp_servers:\n  gh: { command: npx, transport: sse }\n", "gh:",
     "mcp_servers.gh.transport: expected stdio or http, got 'sse'"),
    ("mcp-animus-command", "mcp_servers:\n  animus: { command: animus, args: [mcp, serve] }\n", "animus:",
     "mcp_servers.animus: 'animus' is Animus's own server (animus mcp serve) and takes only tools, env and config"),
    ("syntax", SMALL.replace("program: make", "program: [make"), "timeout_secs",
     "invalid YAML: expected ',' or ']', but got ':'"),
    ("tag", "daemon: { when: !!python/name:os.system x }\n", "daemon",
     ("invalid YAML: could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/name:os.system'")),
]


@pytest.mark.parametrize(("text", "marker", "expected"), [c[1:] for c in BAD_CASES],
                         ids=[c[0] for c in BAD_CASES])
def test_every_error_names_file_line_and_field(tmp_path: Path, text: str, marker: str,
                                               expected: str) -> None:
    put(tmp_path, MAIN, text)
    err = error_of(tmp_path)
    assert err.message == f"{MAIN}:{line_of(text, marker)}: {expected}"
    assert err.fix, "every error says how to fix it"


def test_errors_carry_a_fix_and_details(tmp_path: Path) -> None:
    put(tmp_path, MAIN, SMALL.replace("timeout_secs: 10", "timeout_secs: ten"))
    err = error_of(tmp_path)
    assert err.details == {"file": MAIN, "line": 6, "field": "phases.build.command.timeout_secs"}
    put(tmp_path, MAIN, SMALL.replace("    command:", "    comand:"))
    assert "program" not in (error_of(tmp_path).fix or "")  # fix lists phase-level keys
    assert "command" in (error_of(tmp_path).fix or "")


def test_error_in_second_file_names_that_file(tmp_path: Path) -> None:
    put(tmp_path, MAIN, SMALL)
    put(tmp_path, ".animus/workflows/extra.yaml",
        "workflows:\n  - id: x\n    phases: [build, nope]\n")
    assert error_of(tmp_path).message == (
        ".animus/workflows/extra.yaml:3: workflows.x.phases[1]: unknown phase 'nope'")


def test_cross_file_reference_error_points_at_the_referring_file(tmp_path: Path) -> None:
    put(tmp_path, MAIN,
        "agents: { a: { tool: claude } }\nphases:\n  p: { mode: agent, agent: a }\n")
    put(tmp_path, ".animus/workflows/late.yaml", "phases:\n  q:\n    mode: agent\n    agent: b\n")
    assert error_of(tmp_path).message == (
        ".animus/workflows/late.yaml:4: phases.q.agent: unknown agent 'b'")


def test_mcp_servers_resolve_across_files_and_survive_compiling(tmp_path: Path) -> None:
    put(tmp_path, MAIN, """\
        mcp_servers:
          animus: { tools: [subject_] }
        agents:
          builder: { tool: claude, mcp_servers: [animus, github, { scratch: { command: scratch-mcp, args: [-q] } }] }
          reviewer: { tool: codex, mcp_servers: [animus] }
        """)
    put(tmp_path, ".animus/workflows/github.yaml", """\
        mcp_servers:
          github: { command: npx, args: [-y, server-github], env: { GITHUB_TOKEN: "${TOKEN}" }, tools: [get_issue] }
        agents:
          reviewer: { tool: codex }
        """)
    cfg = load_workflow_config(tmp_path, {"TOKEN": "t0k"})
    builder = cfg.agents["builder"].mcp_servers
    assert [(s.name, s.command, s.args, s.tools) for s in builder] == [
        ("animus", None, (), ("subject_",)), ("github", "npx", ("-y", "server-github"), ("get_issue",)),
        ("scratch", "scratch-mcp", ("-q",), ())]
    assert builder[1].env == {"GITHUB_TOKEN": "t0k"}
    assert cfg.agents["reviewer"].mcp_servers == ()  # the later file's profile replaced the whole agent
    state = tmp_path / "state"
    refresh_compiled(tmp_path, {"TOKEN": "t0k"}, state)
    assert read_compiled(state) == cfg
    stored = json.loads((state / COMPILED_FILE).read_text())["agents"]["builder"]["mcp_servers"]
    assert [s["name"] for s in stored] == ["animus", "github", "scratch"]


# --------------------------------------------------------------------- compiled

def test_compile_round_trip(tmp_path: Path) -> None:
    put(tmp_path, MAIN, B7_EXAMPLE + "daemon: { pool_size: 2, active_hours: '09:00-17:00' }\n")
    cfg = load_workflow_config(tmp_path, {})
    compiled = compile_config(cfg)
    assert compiled["schema"] == SCHEMA and compiled["hash"].startswith("sha256:")
    assert json.loads(json.dumps(compiled)) == compiled
    state = tmp_path / "state"
    path = write_compiled(cfg, state)
    assert path == state / COMPILED_FILE
    assert [p.name for p in state.iterdir()] == [COMPILED_FILE]
    assert read_compiled(state) == cfg
    assert compile_config(read_compiled(state)) == compiled


def test_read_compiled_reports_damage(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        read_compiled(tmp_path)
    write_compiled(load_workflow_config(tmp_path, {}), tmp_path)
    good = read_compiled(tmp_path)  # kept by the process with its bytes: a changed file is read afresh
    assert read_compiled(tmp_path) is good
    path = tmp_path / COMPILED_FILE
    data = json.loads(path.read_text())
    data["default_workflow_ref"] = "agent-delivery"
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match="does not match its hash"):
        read_compiled(tmp_path)
    path.write_text(json.dumps({**data, "schema": "animus.workflow.compiled.v0"}))
    with pytest.raises(InvalidInput, match="is not animus.workflow.compiled.v1") as info:
        read_compiled(tmp_path)
    assert "delete" in (info.value.fix or "")
    path.write_text("{trunc")
    with pytest.raises(InvalidInput, match="unreadable"):
        read_compiled(tmp_path)


def test_bad_second_file_leaves_compiled_config_untouched(tmp_path: Path) -> None:
    state = tmp_path / "state"
    put(tmp_path, MAIN, SMALL)
    good = refresh_compiled(tmp_path, {}, state)
    before = (state / COMPILED_FILE).read_bytes()
    put(tmp_path, ".animus/workflows/zz.yaml", "phases:\n  build: { mode: command }\n")
    with pytest.raises(InvalidInput, match="zz.yaml:2: phases.build: mode command needs"):
        refresh_compiled(tmp_path, {}, state)
    assert (state / COMPILED_FILE).read_bytes() == before
    assert [p.name for p in state.iterdir()] == [COMPILED_FILE]
    assert read_compiled(state) == good
    fresh = tmp_path / "fresh-state"
    with pytest.raises(InvalidInput):
        refresh_compiled(tmp_path, {}, fresh)
    assert not fresh.exists()


# ------------------------------------------------------------------- properties

_WORDS = sorted({
    "agents", "phases", "workflows", "pipelines", "schedules", "default_workflow_ref", "daemon",
    "mcp_servers", "tool", "provider", "model", "system_prompt", "mode", "agent", "agent_id",
    "directive", "command", "manual", "decision_contract", "idempotency", "timeout_secs",
    "retry", "program", "args", "env", "cwd_mode", "cwd_path", "success_exit_codes", "id",
    "on_verdict", "rework", "advance", "skip", "fail", "target", "skip_if",
    "max_rework_attempts", "workflow_ref", "cron", "enabled", "input", "budget", "max_tokens",
    "min_confidence", "max_risk", "backoff", "max_attempts", "implement", "review", "tests",
    "builder", "reviewer", "idempotent", "task_root", "path", "0 2 * * *", "medium",
    "task_type == docs", "labels contains x", "reviewed-delivery", "${X}", "$$", "<<",
})
_TOP_KEYS = ["agents", "phases", "workflows", "pipelines", "schedules", "default_workflow_ref",
             "daemon", "models", "mcp_servers", "workflow"]
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 700), st.floats(allow_infinity=True),
    st.text(max_size=10), st.sampled_from(_WORDS), st.dates(),
)
_NODES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(_WORDS) | st.text(max_size=6),
                                            inner, max_size=4)),
    max_leaves=30,
)
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
_PROPS = settings(max_examples=80, deadline=None, suppress_health_check=_HEALTH)


def _load_or_invalid(*texts: str) -> WorkflowConfig | None:
    """The property: a config, or one located InvalidInput line; never anything else."""
    named = [(f"f{i}.yaml", text) for i, text in enumerate(texts)]
    try:
        cfg = load_workflow_texts(named, {"X": "x"})
    except InvalidInput as exc:
        assert "\n" not in exc.message
        assert exc.message.split(":", 1)[0] in {name for name, _ in named}
        return None
    compiled = json.loads(json.dumps(compile_config(cfg)))
    assert compiled["schema"] == SCHEMA
    return cfg


def _replace_at(doc: Any, path: list[Any], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace_at(doc[head], rest, value)}
    copy = list(doc)
    copy[head] = _replace_at(doc[head], rest, value)
    return copy


def _paths(doc: Any, prefix: list[Any]) -> list[list[Any]]:
    out = [prefix]
    items: Any = doc.items() if isinstance(doc, dict) else []
    items = enumerate(doc) if isinstance(doc, list) else items
    for key, value in items:
        out += _paths(value, [*prefix, key])
    return out


@_PROPS
@given(st.dictionaries(st.sampled_from(_TOP_KEYS), _NODES, max_size=6))
def test_random_documents_load_or_fail_cleanly(doc: dict[str, Any]) -> None:
    _load_or_invalid(yaml.safe_dump(doc, allow_unicode=True))


@_PROPS
@given(st.data())
def test_mutated_valid_documents_load_or_fail_cleanly(data: st.DataObject) -> None:
    doc = yaml.safe_load(B7_EXAMPLE)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc, [])))
        doc = _replace_at(doc, path, data.draw(_NODES))
    _load_or_invalid(yaml.safe_dump(doc, allow_unicode=True))


@_PROPS
@given(st.data())
def test_text_edits_load_or_fail_cleanly(data: st.DataObject) -> None:
    text = B7_EXAMPLE
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 8))
        insert = data.draw(st.text(alphabet=" \t\n:-[]{}#&*!|>'\"$%@`,?\\0a~", max_size=4))
        text = text[:at] + insert + text[at + cut:]
    _load_or_invalid(text)


@settings(max_examples=30, deadline=None,
          suppress_health_check=_HEALTH)
@given(second=st.dictionaries(st.sampled_from(_TOP_KEYS), _NODES, max_size=4))
def test_second_file_never_half_applies(tmp_path_factory: pytest.TempPathFactory,
                                        second: dict[str, Any]) -> None:
    root = tmp_path_factory.mktemp("proj")
    state = root / "state"
    put(root, MAIN, B7_EXAMPLE)
    first = refresh_compiled(root, {}, state)
    before = (state / COMPILED_FILE).read_bytes()
    put(root, ".animus/workflows/second.yaml", yaml.safe_dump(second))
    try:
        merged = refresh_compiled(root, {}, state)
    except InvalidInput:
        assert (state / COMPILED_FILE).read_bytes() == before
        assert read_compiled(state) == first
    else:
        assert read_compiled(state) == merged
    assert [p.name for p in state.iterdir()] == [COMPILED_FILE]
