"""Health that means something, and the runbook's section 7 smoke test on a fresh machine.

A fresh ``ANIMUS_HOME`` with the default plugins and one usable provider
(``oai``, pointed at a loopback address in the project's config, and used by
the project's only agent): every step of the runbook's smoke test exits 0,
the plugins nobody uses show ``Unconfigured`` with their fix, ``--strict``
fails on them, and each becomes ``Unhealthy`` (exit 5) once something points
at it — a kind routed to ``linear`` in the config, an agent's
``fallback_provider: claude`` in the YAML (daemon down: one-shot probes).
The verdict rules themselves are unit-tested on plain rows.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from animus.cli.plugin_refs import COMPILED_FILE, COMPILED_SCHEMA
from animus.plugin_runtime.health_policy import classify, fix_of, references
from animus.workflow.config import COMPILED_FILE as WRITTEN_FILE
from animus.workflow.config import SCHEMA as WRITTEN_SCHEMA
from animus.testing import wait_until
from conftest import Env

WORKFLOWS = """\
default_workflow_ref: ship
agents:
  coder:
    tool: oai
    model: scripted/coder
phases:
  implement:
    mode: agent
    agent: coder
    idempotency: sideeffecting
    directive: Implement the task.
workflows:
  - id: ship
    phases: [implement]
"""
UNUSED = ("claude", "codex", "gemini", "opencode", "linear", "sqlite")


def rows_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["plugin"]: r for r in report["plugins"]}


def test_runbook_smoke_test_passes_on_a_fresh_machine_with_one_usable_provider(env: Env) -> None:
    env.write_workflows(WORKFLOWS)
    env.write_config({"plugins": {"oai": {"config": {"base_url": "http://127.0.0.1:9/v1"}}}})
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    smoke = [("--version",), ("plugin", "list"), ("daemon", "preflight"), ("daemon", "start", "--autonomous"),
             ("daemon", "health"), ("subject", "list", "--kind", "task"), ("workflow", "list", "--limit", "5")]
    for step in smoke:
        out = env.run(*step)
        if step[:2] == ("daemon", "start"):
            env.started.append(env.status()["pid"])
        assert out.returncode == 0, f"animus {' '.join(step)} exited {out.returncode}: {out.stdout}{out.stderr}"
    health = env.run("daemon", "health").stdout
    assert "oai                  provider   Healthy" in health
    for name in UNUSED:
        line = next(ln for ln in health.splitlines() if ln.startswith(name + " "))
        assert " Unconfigured " in line and "fix: " in line and "(nothing uses it)" in line, line
    assert "fix: export LINEAR_API_KEY=" in health and "fix: npm install -g @anthropic-ai/claude-code" in health

    strict = env.run("daemon", "health", "--strict", "--json")
    assert strict.returncode == 5 and json.loads(strict.stdout)["healthy"] is False

    # a kind routed to linear: now it is used, and its missing key fails the check
    env.write_config({"plugins": {"oai": {"config": {"base_url": "http://127.0.0.1:9/v1"}}},
                      "scheduler": {"kinds": ["task", "linear.issue"]}})
    routed = env.run("daemon", "health", "--json")
    assert routed.returncode == 5, routed.stderr
    linear = rows_of(json.loads(routed.stdout))["linear"]
    assert linear["status"] == "unhealthy" and linear["referenced_by"] == ["kind linear.issue routes here"]
    assert "LINEAR_API_KEY" in linear["last_error"]

    # daemon down: the next start's YAML decides; an agent falling back to claude uses it
    env.write_config({"plugins": {"oai": {"config": {"base_url": "http://127.0.0.1:9/v1"}}}})
    env.write_workflows(WORKFLOWS.replace("model: scripted/coder", "model: scripted/coder\n    fallback_provider: claude"))
    env.run("daemon", "stop", check=True)
    down = env.run("daemon", "health", "--json")
    assert down.returncode == 5, down.stderr
    rows = rows_of(json.loads(down.stdout))
    assert {r["source"] for r in rows.values()} == {"probe"}
    assert rows["claude"]["status"] == "unhealthy"
    assert rows["claude"]["referenced_by"] == ["agent coder (fallback_provider)"]
    assert rows["oai"]["status"] == "healthy" and rows["codex"]["status"] == "unconfigured"


# -- the verdict rules, on plain rows -------------------------------------------------------------

ROLES = {"claude": "provider", "oai": "provider", "default": "subject", "linear": "subject",
         "cron": "trigger", "web-ui": "web-ui", "crashy": "provider"}
KINDS = {"default": ["task"], "linear": ["linear.*"]}


def test_references_name_every_kind_of_use() -> None:
    workflow = {"agents": {"a": {"provider": "oai", "fallback_provider": "claude"}},
                "triggers": [{"id": "nightly", "type": "cron", "enabled": True}], "schedules": []}
    refs = references(workflow, ["linear"], ["task"], KINDS, ROLES)
    assert refs == {"oai": ["agent a (tool)"], "claude": ["agent a (fallback_provider)"],
                    "cron": ["trigger nightly"], "linear": ["plugins.linear in .animus/config.yaml"],
                    "default": ["kind task routes here"], "web-ui": ["a web-ui serves whenever it is installed"]}
    assert set(references(None, [], [], {}, ROLES)) == set(ROLES)  # unknown config: everything is used


def test_only_an_unused_plugin_that_answered_is_unconfigured() -> None:
    rows = [
        {"plugin": "claude", "status": "unhealthy", "answered": True,
         "last_error": "claude not found on PATH (install: npm install -g @anthropic-ai/claude-code)"},
        {"plugin": "linear", "status": "unhealthy", "missing_env": ["LINEAR_API_KEY"],
         "last_error": "missing required environment variable(s) LINEAR_API_KEY"},
        {"plugin": "crashy", "status": "unhealthy", "restarts": 5, "last_error": "exited with code 3"},
        {"plugin": "oai", "status": "unhealthy", "answered": True, "last_error": "base_url is not configured"},
        {"plugin": "default", "status": "degraded", "answered": True},
    ]
    out, ok = classify(rows, {"oai": ["agent a (tool)"]})
    status = {r["plugin"]: r["status"] for r in out}
    assert status == {"claude": "unconfigured", "linear": "unconfigured", "crashy": "unhealthy",
                      "oai": "unhealthy", "default": "degraded"}
    assert not ok  # crashy is broken, and oai is used
    by_name = {r["plugin"]: r for r in out}
    assert by_name["claude"]["fix"].startswith("npm install -g @anthropic-ai/claude-code; or, if you do not use it")
    assert by_name["linear"]["fix"].startswith("export LINEAR_API_KEY=... before the daemon starts")
    assert by_name["oai"]["referenced_by"] == ["agent a (tool)"]
    assert classify(rows[:2] + rows[4:], {})[1] is True
    assert classify(rows[:2] + rows[4:], {}, strict=True)[1] is False
    assert classify([rows[4]], {}, strict=True)[1] is False  # degraded is not Healthy
    assert fix_of({"plugin": "x", "last_error": "no key (fix: export K=1)"}).startswith("export K=1;")


def test_the_light_reader_reads_what_the_compiler_writes() -> None:
    assert (COMPILED_FILE, COMPILED_SCHEMA) == (WRITTEN_FILE, WRITTEN_SCHEMA)


def test_cheap_health_comes_with_the_pong_and_never_from_a_replaced_process(env: Env) -> None:
    """A plugin whose health() reads only its own state answers it in each pong, and ``daemon health``
    shows that answer while it is at most 1.5 ping intervals old (one plugin woken per row less);
    a plugin whose health does I/O (a subject backend's list) is asked live; and a restarted plugin's
    row never carries its predecessor's pong."""
    env.env["ANIMUS_PING_INTERVAL"] = "0.5"
    env.write_config({"plugins": {"oai": {"config": {"base_url": "http://127.0.0.1:9/v1"}}}})
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    env.start()

    def rows() -> dict[str, dict[str, Any]]:
        return rows_of(env.call("daemon/health", {"timeout": 3}))

    oai = wait_until(lambda: (r := rows()["oai"]) and r["source"] == "heartbeat" and r, timeout=15,
                     what="oai's health from its pong")
    assert oai["status"] == "healthy" and oai["answered"] and 0 <= oai["age_ms"] <= 750
    assert oai["base_url"] == "http://127.0.0.1:9/v1"  # the plugin's own answer, whole
    default = rows()["default"]
    assert default["source"] == "live" and default["status"] == "healthy" and "age_ms" not in default
    cli = json.loads(env.run("daemon", "health", "--json").stdout)
    assert rows_of(cli)["oai"]["status"] == "healthy"

    # killed once it has been up 4 s: a pong of its own would show an uptime its successor cannot have
    old = wait_until(lambda: (r := rows()["oai"]) and r["uptime_ms"] >= 4000 and r, timeout=15,
                     what="oai to be up 4 s")["pid"]
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    seen = wait_until(lambda: (r := rows()["oai"]) and r.get("pid") not in (None, old)
                      and r["status"] == "healthy" and r, timeout=20, what="oai to be restarted and answer")
    assert seen["uptime_ms"] <= (time.monotonic() - killed) * 1000  # the new process's answer, not the old one's
