"""docs/plugin-protocol.md is enough to write a plugin: one written from it is accepted.

``tests/fixtures/raw_plugin/raw_plugin.py`` implements the protocol with raw
pyzmq + msgpack, without ``animus.plugin_runtime.sdk`` (or any animus import). The
daemon must start it (handshake), ping it, call it and report it healthy;
the one-shot paths must accept it too. The doc must also name every
variable, method and error code the host really uses, so it cannot drift.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import FAST_RESTART, Env

from animus.testing import wait_until
from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.manifest import BASE_ENV

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugin-protocol.md"
RAW = ROOT / "tests" / "fixtures" / "raw_plugin"


def test_raw_plugin_uses_only_zmq_msgpack_and_the_stdlib() -> None:
    tree = ast.parse((RAW / "raw_plugin.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"zmq", "msgpack"}
    out = subprocess.run([sys.executable, str(RAW / "raw_plugin.py"), "--manifest"], capture_output=True,
                         text=True, timeout=10, check=True)
    manifest = json.loads(out.stdout)
    assert manifest["name"] == "raw" and manifest["protocol_version"] == p.PROTOCOL_VERSION
    assert manifest["capabilities"] == ["raw/echo"]


def test_doc_names_everything_the_host_uses() -> None:
    doc = DOC.read_text().replace("\u2212", "-")  # the doc writes error codes with a real minus sign
    host_env = [p.ENV_ENDPOINT, p.ENV_ID, p.ENV_BUS, p.ENV_CONTROL, p.ENV_STATE, p.ENV_PROJECT,
                "ANIMUS_HOME", "ANIMUS_PARENT_PID", "ANIMUS_HOST_SILENCE_SECS"]
    for name in [*host_env, *BASE_ENV]:
        assert f"`{name}" in doc or f" {name} " in doc or f"{name}`" in doc, name
    for method in ("$/ready", "initialize", "initialized", "$/ping", "health/check", "shutdown", "exit",
                   "$/cancelRequest", "agent/run", "agent/resume", "agent/cancel", "trigger/event",
                   "trigger/ack"):
        assert f"`{method}" in doc, method
    for code in (p.PARSE_ERROR, p.INVALID_REQUEST, p.METHOD_NOT_FOUND, p.INVALID_PARAMS, p.INTERNAL_ERROR,
                 p.NOT_INITIALIZED, p.METHOD_NOT_SUPPORTED, p.CANCELLED, p.TIMEOUT):
        assert re.search(rf"\| {code} \|", doc), code
    assert f"version {p.PROTOCOL_VERSION}" in doc and "<ANIMUS_PLUGIN_ID>:<pid>" in doc
    assert "--manifest" in doc and "animus-plugin.yaml" in doc


def test_daemon_accepts_a_plugin_written_from_the_doc(env: Env) -> None:
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 10})
    env.env["ANIMUS_PING_INTERVAL"] = "0.5"  # heartbeats every 0.5 s: 3 missed would kill it in ~2 s
    installed = env.json("plugin", "install", str(RAW))["installed"]
    assert installed["name"] == "raw" and installed["role"] == "provider"
    assert not (env.home / "plugins" / "raw" / "__pycache__").exists()
    env.start("--skip-preflight")
    node = wait_until(lambda: (n := env.node("raw")) and n["state"] == "running" and n, timeout=15,
                      what="the raw plugin to finish its handshake")
    running_since = time.monotonic()
    assert node["restarts"] == 0
    pong = env.json("plugin", "call", "--name", "raw", "--method", "$/ping")
    assert pong["via"] == "daemon" and pong["result"] == {"pong": True, "pid": node["pid"]}
    echo = env.json("plugin", "call", "--name", "raw", "--method", "raw/echo", "--params", '{"a": [1, "b"]}')
    assert echo["result"] == {"echo": {"a": [1, "b"]}}
    unknown = env.run("plugin", "call", "--name", "raw", "--method", "raw/nope", "--json")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout)["error"] == {"code": p.METHOD_NOT_FOUND, "message": "raw does not "
                                                   "implement raw/nope", "data": None}
    health = env.json("daemon", "health")
    row = next(r for r in health["plugins"] if r["plugin"] == "raw")
    assert row["status"] == "healthy" and row["source"] == "live" and row["uptime_ms"] >= 0
    # still the same process after many heartbeats: it answers the host's $/ping
    wait_until(lambda: time.monotonic() - running_since > 3, timeout=10, what="six heartbeats")
    assert env.node("raw")["pid"] == node["pid"] and env.node("raw")["state"] == "running"
    env.run("daemon", "stop", check=True)
    # the one-shot host accepts it too: handshake, $/ping, health/check, shutdown, exit
    assert env.run("plugin", "ping", "--name", "raw").stdout.startswith("raw: pong in ")
    down = env.json("daemon", "health")
    assert down["daemon"]["status"] == "not running"
    assert [(r["plugin"], r["status"], r["source"]) for r in down["plugins"]] == [("raw", "healthy", "probe")]
