"""Agent phases in real workflows: provider plugins driving the stand-in CLIs.

The stand-ins replay the vendors' recorded stream formats; which scenario a
call plays is chosen by a ``[standin:scenario=...]`` marker that the test
puts in the task's description (the runner puts the task in the prompt).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from animus.testing import wait_until
from conftest import FAST_RESTART, Env

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "providers"))
from daemon_setup import plugins_config, standin_environment  # noqa: E402

WORKFLOWS = """
agents:
  coder:    {tool: claude, model: claude-sonnet-4-6, system_prompt: "You implement."}
  backed:   {tool: claude, model: claude-sonnet-4-6, fallback_provider: gemini}
  reviewer: {tool: codex, model: gpt-5-codex}
phases:
  implement: {mode: agent, agent: coder, idempotency: idempotent, directive: "Implement the task."}
  review:    {mode: agent, agent: reviewer, idempotency: idempotent, directive: "Review it."}
  backed_up: {mode: agent, agent: backed, idempotency: idempotent}
workflows:
  - id: fallback
    phases: [backed_up]
  - id: delivery
    phases:
      - implement
      - review: {on_verdict: {rework: {target: implement}}}
default_workflow_ref: delivery
"""


@pytest.fixture
def agents(env: Env, tmp_path: Path) -> Env:
    env.env = standin_environment(env.env, tmp_path) | {"ANIMUS_MIN_PARK_SECS": "1"}
    env.write_config({"restart": FAST_RESTART, "interval_secs": 0.2, "plugins": plugins_config(None)})
    env.write_workflows(WORKFLOWS)
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    env.start()
    return env


def new_task(env: Env, scenario: str) -> str:
    created = env.call("subject/call", {"kind": "task", "verb": "create", "params": {
        "title": "Add a greeting", "status": "ready", "description": f"[standin:scenario={scenario}]"}})
    return str(created["id"])


def set_scenario(env: Env, task_id: str, scenario: str) -> None:
    env.call("subject/call", {"kind": "task", "verb": "update", "params": {
        "id": task_id, "fields": {"description": f"[standin:scenario={scenario}]"}}})


def get(env: Env, wf: str) -> dict[str, Any]:
    return env.call("workflow/get", {"id": wf})  # type: ignore[no-any-return]


def events(env: Env) -> list[dict[str, Any]]:
    log = Path(env.call("daemon/status")["state_root"]) / "logs" / "events.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_agent_workflow_streams_tokens_and_records_usage(agents: Env) -> None:
    tid = new_task(agents, "success")
    wf = agents.call("workflow/run", {"task_id": tid})["workflow_id"]
    wait_until(lambda: get(agents, wf)["status"] == "completed", timeout=40, what="the agent workflow")
    done = get(agents, wf)
    phases = {p["phase"]: p for p in done["phases"]}
    assert phases["implement"]["verdict"] == "advance" and phases["review"]["verdict"] == "advance"
    assert phases["implement"]["usage"]["input_tokens"] > 0
    assert done["usage"]["cost_usd"] > 0  # claude reports its cost
    assert done["task_usage"]["input_tokens"] == done["usage"]["input_tokens"]
    mine = [e for e in events(agents) if e.get("workflow_id") == wf and e["cat"] == "agent"]
    kinds = [e["kind"] for e in mine]
    assert kinds.count("agent_run_started") == 2 and "agent_text" in kinds
    assert all(e["phase"] in ("implement", "review") for e in mine)
    counters = agents.call("daemon/metrics")["counters"]
    assert counters["agent_runs_total{provider=claude}"] >= 1 and counters["agent_runs_total{provider=codex}"] >= 1
    text = agents.run("workflow", "get", wf).stdout
    assert "cost=$" in text and "usage:" in text


def test_usage_limit_parks_the_phase_and_it_resumes_by_itself(agents: Env) -> None:
    tid = new_task(agents, "rate_limit")
    wf = agents.call("workflow/run", {"task_id": tid})["workflow_id"]
    parked = wait_until(lambda: (w := get(agents, wf))["waiting"] and w, timeout=30, what="the phase to park")
    assert parked["status"] == "pending"
    assert parked["waiting"].startswith("claude usage limit until ")
    # the operator sees it too (the phase parks again each time the limit is still there)
    wait_until(lambda: "waiting: claude usage limit until" in agents.run("workflow", "get", wf).stdout,
               timeout=30, what="workflow get to show the parked phase")
    set_scenario(agents, tid, "success")  # the limit lifted
    wait_until(lambda: get(agents, wf)["status"] == "completed", timeout=40, what="the run to resume by itself")
    implement = [p for p in get(agents, wf)["phases"] if p["phase"] == "implement"][0]
    statuses = [a["status"] for a in implement["attempt_list"]]
    assert statuses[-1] == "completed" and set(statuses[:-1]) == {"waiting"}  # parked, never failed


def test_crashed_idempotent_agent_phase_resumes_the_provider_session(agents: Env, tmp_path: Path) -> None:
    tid = new_task(agents, "hang")
    wf = agents.call("workflow/run", {"task_id": tid})["workflow_id"]
    session = Path(agents.call("daemon/status")["state_root"]) / "runs" / wf / "implement.session.json"
    saved = wait_until(lambda: json.loads(session.read_text()).get("session_id"), timeout=30,
                       what="the provider to report its session id")
    set_scenario(agents, tid, "success")
    runner = next(c["pid"] for s in agents.call("daemon/status")["tree"] if s["name"] == "workflows"
                  for c in s["children"] if c["name"] == wf)
    os.kill(runner, signal.SIGKILL)
    wait_until(lambda: get(agents, wf)["status"] == "completed", timeout=40, what="the recovered run")
    implement = [p for p in get(agents, wf)["phases"] if p["phase"] == "implement"][0]
    assert [a["status"] for a in implement["attempt_list"]] == ["crashed", "completed"]
    argv_log = [json.loads(x) for x in (tmp_path / "standin.argv.jsonl").read_text().splitlines()]
    resumed = [a for a in argv_log if "--resume" in json.dumps(a)]
    assert resumed and saved in json.dumps(resumed[-1])


def test_malformed_verdict_is_a_failed_phase_not_a_crash(agents: Env) -> None:
    tid = new_task(agents, "bad_verdict")
    wf = agents.call("workflow/run", {"task_id": tid})["workflow_id"]
    wait_until(lambda: get(agents, wf)["status"] == "failed", timeout=30, what="the phase to fail")
    failed = get(agents, wf)
    assert "verdict" in failed["failure_reason"]
    wait_until(lambda: agents.call("subject/call", {"kind": "task", "verb": "get", "params": {"id": tid}})
               ["blocked_reason"] == "Blocked by status update", timeout=10, what="the task to be blocked")


def test_fallback_provider_takes_a_limited_phase(agents: Env) -> None:
    tid = new_task(agents, "success")
    agents.call("subject/call", {"kind": "task", "verb": "update", "params": {
        "id": tid, "fields": {"description": "[standin:claude:scenario=rate_limit] [standin:scenario=success]"}}})
    wf = agents.call("workflow/run", {"task_id": tid, "workflow_ref": "fallback"})["workflow_id"]
    wait_until(lambda: get(agents, wf)["status"] == "completed", timeout=40, what="the fallback to finish the phase")
    fallback = [e for e in events(agents) if e["kind"] == "agent_fallback" and e.get("workflow_id") == wf]
    assert fallback and fallback[0]["data"]["fallback_from"] == "claude" and fallback[0]["data"]["fallback_to"] == "gemini"
    started = [e["data"]["provider"] for e in events(agents)
               if e["kind"] == "agent_run_started" and e.get("workflow_id") == wf]
    assert started[:2] == ["claude", "gemini"]
