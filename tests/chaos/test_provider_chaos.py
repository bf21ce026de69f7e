"""Kill a provider run with real signals: the CLI mid-stream, then the plugin itself.

Either way the caller gets an answer (never a hang: the call's own timeout is
60 s, the test waits 20 s at most), and no
process of the run is left: the CLI dies with its plugin (parent-death
signal), and what the CLI started is swept by the plugin's next instance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import ANIMUS, FAST_RESTART, Env, alive

from animus.testing import EventRecorder, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures" / "providers"))
from daemon_setup import plugins_config, prompt, standin_environment, standin_pids

pytestmark = pytest.mark.chaos


@pytest.fixture
def claude(env: Env) -> Env:
    """A daemon with only the claude provider, on its stand-in."""
    env.env = standin_environment(env.env, env.home.parent)
    env.run("plugin", "install", "claude", check=True)
    env.write_config(
        {
            "restart": FAST_RESTART,
            "ready_timeout": 10,
            "plugins": {"claude": plugins_config(None)["claude"]},
        }
    )
    env.start("--skip-preflight")
    wait_until(
        lambda: (n := env.node("claude")) and n["state"] == "running",
        timeout=15,
        what="the claude provider to run",
    )
    return env


def start_run(env: Env, workflow_id: str, scenario: str) -> subprocess.Popen[str]:
    params = {"prompt": prompt("Fix the bug.", scenario), "workflow_id": workflow_id}
    return subprocess.Popen(
        [
            *ANIMUS,
            "plugin",
            "call",
            "--name",
            "claude",
            "--method",
            "agent/run",
            "--params",
            json.dumps(params),
            "--timeout",
            "60",
            "--json",
        ],
        cwd=env.project,
        env=env.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events(env: Env, workflow_id: str | None = None) -> list[dict[str, Any]]:
    (state_root,) = (p for p in env.home.iterdir() if (p / "logs").is_dir())
    match = {"workflow_id": workflow_id} if workflow_id else {}
    return EventRecorder.of_state_root(state_root).select(cat="agent", **match)


def running_standin(env: Env, workflow_id: str) -> list[int]:
    """The stand-in's pid and its grandchild's, once the plugin has streamed its first events."""
    workdir = env.home.parent
    pids = wait_until(
        lambda: len(p := standin_pids(workdir)) == 2 and p,
        timeout=15,
        what="the stand-in and its child to start",
    )
    wait_until(
        lambda: any(e["kind"] == "agent_tool_call" for e in events(env, workflow_id)),
        timeout=10,
        what="the first streamed events",
    )
    return pids


def test_cli_killed_mid_stream_fails_the_phase(claude: Env) -> None:
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    call = start_run(claude, workflow_id, "hang")
    pids = running_standin(claude, workflow_id)

    os.kill(pids[0], signal.SIGKILL)
    out, _ = call.communicate(timeout=20)  # ends because its CLI died, long before its 60 s timeout
    result = json.loads(out.strip().splitlines()[-1])["result"]
    assert result["verdict"] == "fail" and "SIGKILL" in result["error"]
    assert result["session_id"]  # known from the stream before the kill
    wait_until(lambda: not alive(set(pids)), timeout=5, what="the stand-in's child to be stopped")
    finished = [e for e in events(claude, workflow_id) if e["kind"] == "agent_run_finished"]
    assert len(finished) == 1 and finished[0]["data"]["verdict"] == "fail"


def test_plugin_killed_mid_run_fails_the_call_and_is_restarted(claude: Env) -> None:
    old = claude.node("claude")["pid"]  # type: ignore[index]
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    call = start_run(claude, workflow_id, "hang")
    pids = running_standin(claude, workflow_id)

    os.kill(old, signal.SIGKILL)
    _, err = call.communicate(timeout=20)  # failed by the host, long before the call's 60 s timeout
    assert call.returncode != 0
    assert "claude exited while handling the request" in err

    wait_until(
        lambda: (n := claude.node("claude")) and n["state"] == "running" and n["pid"] != old,
        timeout=10,
        what="claude to be restarted",
    )
    # the CLI died with its plugin; the child it started is swept by the new instance
    wait_until(
        lambda: not alive(set(pids)), timeout=5, what="the killed run's processes to be gone"
    )
    reaped = wait_until(
        lambda: [e for e in events(claude) if e["kind"] == "agent_orphans_reaped"],
        timeout=5,
        what="the sweep to be reported",
    )
    assert pids[1] in reaped[0]["data"]["pids"]

    again = claude.json(
        "plugin",
        "call",
        "--name",
        "claude",
        "--method",
        "agent/run",
        "--params",
        json.dumps({"prompt": prompt("Fix the bug.")}),
    )
    assert again["result"]["verdict"] == "advance"


def test_stopping_the_plugin_mid_run_stops_its_cli_and_answers(claude: Env) -> None:
    """SIGTERM (an operator stop) is the graceful path: the run is cancelled, its group
    stopped, and the pending call still gets its answer before the plugin exits."""
    workflow_id = f"wf-{uuid.uuid4().hex[:8]}"
    call = start_run(claude, workflow_id, "hang")
    pids = running_standin(claude, workflow_id)

    stopped = claude.json("daemon", "stop-child", "--name", "claude")
    assert stopped["child"]["state"] == "stopped"
    assert not alive(set(pids))
    out, _ = call.communicate(timeout=20)
    result = json.loads(out.strip().splitlines()[-1])["result"]
    assert result["verdict"] == "fail" and result["error"] == "cancelled"
    finished = [e for e in events(claude, workflow_id) if e["kind"] == "agent_run_finished"]
    assert len(finished) == 1 and finished[0]["data"]["error"] == "cancelled"
