"""The four real agent CLIs, driven through Animus: daemon -> provider plugin -> CLI -> scripted model.

Each CLI is the pinned npm package (``scripts/install-agent-clis``), pointed at
one loopback server per module (``agent_cli_server``) that speaks its vendor's
streaming API. The scripted model asks for a real tool use (a shell command
that writes a file), then answers with a verdict block. What a user checks:
the file is written in the run's own git worktree and, the run done, squash-merged
into ``main`` (the operator's checkout); the tool call and the text are in
``events.jsonl``, usage is recorded; with ``permissions: read-only`` the write
is denied, reported, and the phase fails saying so; a daemon SIGKILLed mid
phase resumes the CLI's own session after a restart. An agent whose profile
names ``mcp_servers: [animus]`` marks its own task done and files a
follow-up through ``animus mcp serve``, and the CLI shows both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import agent_cli_support as clis
from agent_cli_server import Hold, McpTool, Say, ScriptedModels, Shell
from animus.process.handle import wait_gone
from animus.testing import wait_until
from conftest import FAST_RESTART, Env, alive

pytestmark = pytest.mark.skipif(bool(clis.missing()), reason=clis.install_hint())


SHIP = "\n    post_success: {merge: {strategy: squash, auto_merge: true}}"


def _workflows() -> str:
    agents, phases, flows = [], [], []
    for v in clis.VENDORS:
        model = clis.MODELS[v]
        agents += [f"  {v}_edit: {{tool: {v}, model: {model}}}",
                   f"  {v}_ro: {{tool: {v}, model: {model}, permissions: {{mode: read-only}}}}",
                   f"  {v}_mcp: {{tool: {v}, model: {model}, mcp_servers: [animus]}}"]
        for kind in ("edit", "ro", "mcp"):
            phases.append(f"  {v}_{kind}: {{mode: agent, agent: {v}_{kind}, idempotency: idempotent, "
                          f"directive: 'Do the task.'}}")
            flows.append(f"  - id: {v}_{kind}\n    phases: [{v}_{kind}]"
                         + (SHIP if kind == "edit" else ""))
    return ("agents:\n" + "\n".join(agents) + "\nphases:\n" + "\n".join(phases)
            + "\nworkflows:\n" + "\n".join(flows) + "\n")


@pytest.fixture(scope="module")
def models() -> Iterator[ScriptedModels]:
    server = ScriptedModels()
    yield server
    server.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, models: ScriptedModels) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("clis")
    project = base / "project"
    project.mkdir()
    # a repository with a first commit on main, checked out: each run gets its own worktree
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    (project / "README.md").write_text("the operator's project\n")
    subprocess.run(["git", "-C", str(project), "add", "README.md"], check=True)
    subprocess.run(["git", "-C", str(project), "-c", "user.name=Operator", "-c", "user.email=op@example.com",
                    "commit", "-q", "-m", "initial commit"], check=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    environ |= {"ANIMUS_HOME": str(base / "home"), "ANIMUS_START_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"}
    env = Env(base / "home", project, clis.cli_environment(environ, models.url, base / "user"))
    env.run("plugin", "install-defaults", "--include-subjects", check=True)  # the board, for the MCP test
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 10, "interval_secs": 0.2,
                      "plugins": clis.plugins_config()})
    env.write_workflows(_workflows())
    env.start("--skip-preflight")
    try:
        yield env
    finally:
        _stop(env)


def _stop(env: Env) -> None:
    pids = set(env.started)
    for pid in env.started:
        try:
            pids |= {p.pid for p in psutil.Process(pid).children(recursive=True)}
        except psutil.Error:
            pass
    env.run("daemon", "stop", "--shutdown-timeout-secs", "20")
    wait_until(lambda: not alive(pids), timeout=25, what="the daemon tree to be gone")


def _run(env: Env, flow: str, title: str) -> str:
    return str(env.call("workflow/run", {"title": title, "workflow_ref": flow})["workflow_id"])


def _get(env: Env, wf: str) -> dict[str, Any]:
    return env.call("workflow/get", {"id": wf})  # type: ignore[no-any-return]


def _events(env: Env, wf: str) -> list[dict[str, Any]]:
    log = Path(env.call("daemon/status")["state_root"]) / "logs" / "events.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in rows if e.get("workflow_id") == wf]


def _finished(env: Env, wf: str, timeout: float = 90) -> dict[str, Any]:
    wait_until(lambda: _get(env, wf)["status"] in ("completed", "failed", "blocked"), timeout=timeout,
               what=f"workflow {wf} to finish")
    return _get(env, wf)


@pytest.mark.parametrize("vendor", clis.VENDORS)
def test_cli_runs_a_tool_that_writes_into_the_run_directory(daemon: Env, models: ScriptedModels,
                                                            vendor: str) -> None:
    target = f"written-by-{vendor}.txt"
    marker = models.script(f"write-{vendor}", Shell(f"printf 'hello from {vendor}' > {target}"),
                           Say(clis.verdict(f"{vendor} wrote the greeting")))
    wf = _run(daemon, f"{vendor}_edit", f"Write the greeting {marker}")
    done = _finished(daemon, wf)
    assert done["status"] == "completed", done
    # written in the run's worktree, on its branch, then squash-merged into the operator's main
    worktree = Path(done["worktree"]["path"])
    assert worktree.parent.name == "worktrees" and worktree.resolve() != daemon.project.resolve()
    assert (daemon.project / target).read_text() == f"hello from {vendor}"
    shown = subprocess.run(["git", "-C", str(daemon.project), "show", "--stat", "--format=%an %s", "main"],
                           capture_output=True, text=True, check=True).stdout
    assert shown.startswith("Animus ") and target in shown, shown
    assert done["delivery"]["merge"]["strategy"] == "squash", done["delivery"]

    events = _events(daemon, wf)
    calls = [e["data"] for e in events if e["kind"] == "agent_tool_call"]
    assert any(target in json.dumps(c["input"]) for c in calls), calls
    assert any(e["kind"] == "agent_tool_result" for e in events)
    text = "".join(e["data"]["text"] for e in events if e["kind"] == "agent_text")
    assert f"{vendor} wrote the greeting" in text
    finished = next(e["data"] for e in events if e["kind"] == "agent_run_finished")
    assert finished["usage"]["input_tokens"] > 0 and finished["usage"]["output_tokens"] > 0
    assert finished["session_id"]
    assert done["usage"]["input_tokens"] >= finished["usage"]["input_tokens"]
    if vendor == "claude":  # the only one of the four that prices a run itself
        assert finished["usage"]["cost_usd"] > 0
    assert models.seen(f"write-{vendor}")[-1].step == 1  # the CLI sent the tool result back


@pytest.mark.parametrize("vendor", clis.VENDORS)
def test_read_only_denies_the_write_and_the_phase_says_so(daemon: Env, models: ScriptedModels,
                                                          vendor: str) -> None:
    target = f"denied-{vendor}.txt"
    marker = models.script(f"ro-{vendor}", Shell(f"printf nope > {target}"),
                           Say(clis.verdict("reviewed, looks fine")))
    wf = _run(daemon, f"{vendor}_ro", f"Review the change {marker}")
    done = _finished(daemon, wf)
    assert not (daemon.project / target).exists()
    assert not (Path(done["worktree"]["path"]) / target).exists()
    assert done["status"] == "failed", done
    assert "permission denied" in done["failure_reason"] and target in done["failure_reason"]
    denied = [e["data"] for e in _events(daemon, wf) if e["kind"] == "agent_permission_denied"]
    assert denied and target in denied[0]["input"] and denied[0]["message"], denied
    shown = daemon.run("workflow", "get", wf).stdout
    assert "permission denied" in shown


RESUMABLE = ("claude", "codex", "gemini", "opencode")


@pytest.mark.parametrize("vendor", RESUMABLE)
def test_daemon_sigkill_mid_phase_resumes_the_cli_session(daemon: Env, models: ScriptedModels,
                                                          vendor: str) -> None:
    name = f"resume-{vendor}"
    marker = models.script(name, Shell(f"printf one > step-{vendor}.txt"),
                           Hold(name, then=Say(clis.verdict(f"{vendor} resumed and finished"))))
    wf = _run(daemon, f"{vendor}_edit", f"Two steps {marker}")
    wait_until(lambda: len(models.seen(name)) >= 2, timeout=60, what=f"{vendor} to reach the held turn")
    session_file = Path(daemon.call("daemon/status")["state_root"]) / "runs" / wf / f"{vendor}_edit.session.json"
    first = json.loads(session_file.read_text())["session_id"]
    assert first

    root = daemon.started[-1]
    os.kill(root, signal.SIGKILL)
    assert wait_gone(root, 10)
    models.release(name)  # the held request's CLI is gone with the daemon
    daemon.start("--skip-preflight")

    done = _finished(daemon, wf, timeout=120)
    assert done["status"] == "completed", done
    attempts = [a for p in done["phases"] for a in p["attempt_list"]]
    assert [a["status"] for a in attempts] == ["crashed", "completed"], attempts
    assert attempts[-1]["session_id"] == first
    resumed = models.seen(name)[-1]
    assert resumed.step == 1 and "step-" + vendor in resumed.text  # the first turn's tool call, replayed
    assert (daemon.project / f"step-{vendor}.txt").read_text() == "one"


# opencode too passes this test, in ~27 s (its start-up, three times); its MCP config is checked by
# test_mcp_clients.py (the real opencode connects) and test_provider_mcp.py instead, to keep the suite short
@pytest.mark.parametrize("vendor", ("claude", "codex", "gemini"))
def test_agent_sets_its_task_and_files_a_follow_up_through_the_animus_mcp_server(
        daemon: Env, models: ScriptedModels, vendor: str) -> None:
    name = f"mcp-{vendor}"
    task = daemon.json("subject", "create", "--title", f"Ship the {vendor} change", "--status", "ready",
                       "--description", f"Mark it done when shipped [script:{name}]")["subject"]["id"]
    follow_up = f"Document the {vendor} change"
    models.script(name, McpTool("subject_status", {"status": "done"}),  # no id: "my task"
                  McpTool("subject_create", {"title": follow_up, "parent": task, "status": "ready"}),
                  Say(clis.verdict("marked my task done and filed the follow-up")))
    wf = str(daemon.call("workflow/run", {"task_id": task, "workflow_ref": f"{vendor}_mcp"})["workflow_id"])
    done = _finished(daemon, wf)
    assert done["status"] == "completed", done

    # what an operator sees; that the agent (not the run's own projection) made it done is in the events below
    assert daemon.json("subject", "get", "--id", task)["subject"]["status"] == "done"
    listed = daemon.json("subject", "list", "--status", "ready")["subjects"]
    filed = [s for s in listed if s["title"] == follow_up]
    assert len(filed) == 1 and filed[0]["parent"] == task, listed

    events = _events(daemon, wf)
    calls = {e["data"]["id"]: e["data"] for e in events if e["kind"] == "agent_tool_call"}
    status_call = next(c for c in calls.values() if c["name"].endswith("subject_status"))
    assert "animus" in status_call["name"] and status_call["input"] == {"status": "done"}
    results = {e["data"]["id"]: e["data"] for e in events if e["kind"] == "agent_tool_result"}
    status_result = results[status_call["id"]]
    assert not status_result["is_error"] and "animus.subject.status.v1" in status_result["output"], status_result
    create_call = next(c for c in calls.values() if c["name"].endswith("subject_create"))
    assert filed[0]["id"] in results[create_call["id"]]["output"]
    changes = {e["kind"]: e["data"] for e in events if e["cat"] == "subject"}  # tagged with this run
    assert changes["subject_status_changed"] == {"subject_id": task, "kind": "task", "origin": "mcp",
                                                 "from_status": "in-progress", "to_status": "done"}
    assert changes["subject_created"]["subject_id"] == filed[0]["id"] and changes["subject_created"]["parent"] == task
