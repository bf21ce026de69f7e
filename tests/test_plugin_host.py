"""The plugin host with real plugin processes: misbehaving plugins, env, installs, preflight.

Five misbehaving plugins (crash at start, hang in the handshake, garbage on
the wire, a missing required env var, the wrong protocol version) go through
a real daemon *and* through the one-shot paths (``daemon health`` and
``plugin ping`` with no daemon): each must end in the right state with a
message that names its fault, and the daemon must keep running.

To stay fast, the plugins are installed once for the module (plugins live in
``ANIMUS_HOME``, shared by every project) and one daemon runs for the
daemon-up tests, in ``project``; the daemon-down tests use a second project
(``quiet``) that has no daemon, so no test depends on another's order.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
import zmq
import zmq.asyncio
from conftest import ANIMUS, FAST_RESTART, SIGSTORE_FIXTURES, Env, alive

from animus.bus.codec import pack, unpack
from animus.plugin_runtime.host import PluginHost
from animus.state.scope import Scope, scope_name
from animus.testing import wait_until
from animus.plugin_runtime.install import DEFAULT_SETS, builtin_catalog, install
from animus.plugin_runtime.manifest import BASE_ENV

BUNDLE = SIGSTORE_FIXTURES / "bundle_v3_github.whl.sigstore"
MISBEHAVING = ("crashy", "hangy", "garbage", "needsenv", "wrongproto")
# what each one's last_error must say, daemon up and down alike
FAULT = {
    "crashy": "crashing on init as asked",
    "garbage": "sent a frame that is not valid msgpack",
    "needsenv": "PH_MISSING_TOKEN",
    "wrongproto": "protocol version mismatch: plugin speaks 2.0.0, host speaks 1.0.0",
}
# what a plugin may see: declared + base + passthrough, the host's own ANIMUS_* variables,
# what its wrapper exports, and what sh/python add themselves
HOST_VARS = {"ANIMUS_PLUGIN_ID", "ANIMUS_PLUGIN_ENDPOINT", "ANIMUS_BUS_IN", "ANIMUS_BUS_OUT", "ANIMUS_CONTROL",
             "ANIMUS_STATE_ROOT", "ANIMUS_PROJECT_ROOT", "ANIMUS_HOME", "ANIMUS_PARENT_PID",
             "ANIMUS_HOST_SILENCE_SECS", "PYTHONPATH",
             "ANIMUS_SENSITIVE_ENV"}  # names (no values) of variables to redact
WRAPPER_VARS = {"PROBE_MODE", "PROBE_ROLE", "PROBE_KINDS"}
SHELL_VARS = {"PWD", "OLDPWD", "SHLVL", "_", "LC_CTYPE"}


def write_plugin(root: Path, name: str, role: str = "provider", mode: str = "ok", kinds: str = "",
                 env_required: list[dict[str, Any]] | None = None, require: str | None = None) -> Path:
    """A plugin folder: the scriptable probe behind a wrapper, started as ``{plugin_dir}/run.sh``.

    ``require`` makes the wrapper refuse to start without that variable, as a
    real plugin checks its credentials before connecting.
    """
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/sh", f"export PROBE_MODE='{mode}' PROBE_ROLE='{role}' PROBE_KINDS='{kinds}'"]
    if require:
        lines.append(f'[ -n "${require}" ] || {{ echo "{name}: required environment variable '
                     f'{require} is not set" >&2; exit 2; }}')
    lines.append(f'exec "{sys.executable}" -m animus.testing_worker "$@"')
    wrapper = folder / "run.sh"
    wrapper.write_text("\n".join(lines) + "\n")
    wrapper.chmod(0o755)
    manifest: dict[str, Any] = {"name": name, "role": role, "version": "0.0.1", "protocol": "1.0.0",
                                "description": f"probe ({mode})", "command": ["{plugin_dir}/run.sh"],
                                "env_required": env_required or []}
    if kinds:
        manifest["kinds"] = kinds.split(",")
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump(manifest))
    return folder


def make_env(home: Path, project: Path) -> Env:
    project.mkdir(parents=True)
    (project / "sub").mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("ANIMUS_", "PH_"))}
    environ |= {"ANIMUS_HOME": str(home), "ANIMUS_START_TIMEOUT": "60", "PYTHONUNBUFFERED": "1",
                "PH_DECLARED": "declared", "PH_PASSED": "passed", "PH_SECRET": "must not leak"}
    env = Env(home, project, environ)
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5,
                      "plugins": {"good": {"env": ["PH_PASSED"]}}})
    return env


def scope_of(env: Env) -> Scope:
    name = scope_name(env.project)
    return Scope(env.project.resolve(), name, env.home, env.home / name)


def cli(env: Env, *args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``animus <args>`` (to run several at once); ``done`` collects it."""
    return subprocess.Popen([*ANIMUS, *args], cwd=cwd or env.project, env=env.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out.strip().splitlines()[-1])


def done(proc: subprocess.Popen[str], timeout: float = 60) -> Done:
    out, err = proc.communicate(timeout=timeout)
    return Done(proc.returncode, out, err)


def plugin_processes(project: Path) -> list[int]:
    """Live plugin processes started for this project (they carry it in their env)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "animus.testing_worker" in " ".join(proc.info["cmdline"] or ()) \
                    and proc.environ().get("ANIMUS_PROJECT_ROOT") == str(project.resolve()) \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def assert_filtered(seen: dict[str, Any], project: Path) -> None:
    env = seen["env"]
    assert env["PH_DECLARED"] == "declared" and env["PH_PASSED"] == "passed"
    assert "PH_SECRET" not in env and "PYTHONUNBUFFERED" not in env
    allowed = set(BASE_ENV) | {"PH_DECLARED", "PH_PASSED"} | HOST_VARS | WRAPPER_VARS | SHELL_VARS
    assert set(env) <= allowed, set(env) - allowed
    assert env["ANIMUS_PROJECT_ROOT"] == str(project.resolve())
    assert seen["cwd"] == str(project.resolve())  # pinned, though the command ran from project/sub


# -- the module's plugins and its daemon ------------------------------------------------------


@dataclass
class World:
    home: Path
    live: Env  # the project with a daemon (see the ``daemon_up`` fixture)
    quiet: Env  # a project that never has a daemon: everything is one-shot


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("host")
    home = base / "home"
    live, quiet = make_env(home, base / "project"), make_env(home, base / "quiet")
    src = base / "src"
    folders = [
        write_plugin(src, "good", env_required=[{"name": "PH_DECLARED", "description": "a declared var"}]),
        write_plugin(src, "crashy", mode="crash_on_init"),
        write_plugin(src, "hangy", mode="hang_handshake"),
        write_plugin(src, "garbage", role="transport", mode="garbage"),
        write_plugin(src, "wrongproto", role="transport", mode="wrong_protocol"),
        write_plugin(src, "needsenv", role="transport", require="PH_MISSING_TOKEN",
                     env_required=[{"name": "PH_MISSING_TOKEN", "sensitive": True}]),
        write_plugin(src, "tasks", role="subject", kinds="task"),
        write_plugin(src, "exiter", mode="exit:7"),  # dies inside initialize, after $/ready
    ]
    for folder in folders:  # in-process: installing is not what these tests are about
        install(scope_of(live), str(folder))
    return World(home, live, quiet)


@pytest.fixture(scope="module")
def daemon_up(world: World) -> Iterator[Env]:
    """The daemon of ``world.live``, started from a subfolder, with both kill switches set."""
    env = world.live
    env.env |= {"ANIMUS_HANDSHAKE_TIMEOUT": "1", "ANIMUS_DAEMON_DISABLE_SUBJECT_PLUGINS": "1",
                "ANIMUS_DAEMON_DISABLE_TRIGGERS": "1"}
    started = done(cli(env, "daemon", "start", "--skip-preflight", "--json", cwd=env.project / "sub"))
    assert started.code == 0, started.err
    pid = started.json()["pid"]
    try:
        yield env
    finally:
        tree = {pid} | {p.pid for p in psutil.Process(pid).children(recursive=True)}
        stopped = env.run("daemon", "stop", "--shutdown-timeout-secs", "20")
        assert stopped.returncode == 0, stopped.stderr
        wait_until(lambda: not alive(tree), timeout=10, what="the daemon tree to be gone")


def node(env: Env, name: str) -> dict[str, Any] | None:
    for sup in env.call("daemon/status")["tree"]:
        if sup["name"] == name:
            return sup  # type: ignore[no-any-return]
        for child in sup.get("children", []):
            if child["name"] == name:
                return child  # type: ignore[no-any-return]
    return None


# -- daemon down: one-shot probes ---------------------------------------------------------------


def test_one_shot_health_reports_each_misbehaving_plugin(world: World) -> None:
    health = done(cli(world.quiet, "daemon", "health", "--json"))
    assert health.code == 5, health.err
    report = health.json()
    assert report["schema"] == "animus.daemon.health.v1" and report["daemon"]["status"] == "not running"
    rows = {r["plugin"]: r for r in report["plugins"]}
    assert set(rows) == {"good", "tasks", "exiter", *MISBEHAVING}
    assert all(r["source"] == "probe" for r in rows.values())
    assert rows["good"]["status"] == "healthy" and rows["tasks"]["status"] == "healthy"
    for name in MISBEHAVING:
        assert rows[name]["status"] == "unhealthy", rows[name]
    for name, fault in FAULT.items():
        assert fault in rows[name]["last_error"], rows[name]
    assert "exited with code 3 during start" in rows["crashy"]["last_error"]
    assert rows["exiter"]["status"] == "unhealthy"
    assert rows["exiter"]["last_error"] == "exited with code 7 during start"
    assert rows["hangy"]["last_error"] == "connected but did not answer initialize within 3s (hung in the handshake?)"
    # a missing required var is named without spawning the plugin at all
    assert rows["needsenv"]["last_error"].startswith("missing required environment variable(s) PH_MISSING_TOKEN")
    wait_until(lambda: not plugin_processes(world.quiet.project), timeout=5, what="every probed plugin to be gone")


def test_one_shot_ping_and_info_fail_with_the_fault(world: World) -> None:
    env = world.quiet
    procs = {name: cli(env, "plugin", "ping", "--name", name) for name in ("good", "crashy", "garbage",
                                                                             "wrongproto", "needsenv")}
    procs["info"] = cli(env, "plugin", "info", "--name", "needsenv")
    procs["info-json"] = cli(env, "plugin", "info", "--name", "needsenv", "--json")
    out = {name: done(proc) for name, proc in procs.items()}
    assert out["good"].code == 0 and out["good"].out.startswith("good: pong in ")
    for name in ("crashy", "garbage", "wrongproto"):
        assert out[name].code == 5, out[name].err
        lines = out[name].err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {name}: "), out[name].err
        assert FAULT[name] in lines[0]
    # missing env: refused before anything is spawned, naming the variable (exit 2, invalid input)
    for name in ("needsenv", "info"):
        assert out[name].code == 2
        assert out[name].err.strip() == ("error: plugin needsenv needs environment variable(s) PH_MISSING_TOKEN "
                                         "(fix: export PH_MISSING_TOKEN=... and run the command again)")
    error = json.loads(out["info-json"].err)["error"]
    assert error["code"] == "invalid_input" and "PH_MISSING_TOKEN" in error["message"]
    wait_until(lambda: not plugin_processes(world.quiet.project), timeout=5, what="every probed plugin to be gone")


def test_one_shot_call_sees_only_declared_env_in_the_project_root(world: World) -> None:
    env = world.quiet
    reply = done(cli(env, "plugin", "call", "--name", "good", "--method", "probe/env", "--json",
                     cwd=env.project / "sub"))
    assert reply.code == 0, reply.err
    data = reply.json()
    assert data["schema"] == "animus.plugin.call.v1" and data["via"] == "one-shot"
    assert_filtered(data["result"], env.project)
    echo = done(cli(env, "plugin", "call", "--name", "good", "--method", "probe/echo",
                    "--params", '{"x": [1, 2]}', "--json"))
    assert echo.json()["result"] == {"x": [1, 2]}
    unknown = done(cli(env, "plugin", "call", "--name", "good", "--method", "probe/nope", "--json"))
    assert unknown.code == 1
    assert unknown.json()["error"]["code"] == -32601
    info = done(cli(env, "plugin", "info", "--name", "good"))
    assert info.code == 0, info.err
    assert "env_required: PH_DECLARED" in info.out and "probe: healthy" in info.out


# -- daemon up -------------------------------------------------------------------------------


def test_daemon_disables_each_misbehaving_plugin_with_its_reason(daemon_up: Env) -> None:
    env = daemon_up
    nodes = wait_until(lambda: all((n := node(env, name)) and n["state"] == "disabled" for name in MISBEHAVING)
                       and {name: node(env, name) for name in MISBEHAVING}, timeout=30,
                       what="the five misbehaving plugins to be disabled")
    for name, n in nodes.items():
        assert n["restarts"] == 5, n
    for name, fault in FAULT.items():
        assert fault in nodes[name]["last_error"], nodes[name]
    assert "PH_MISSING_TOKEN is not set" in nodes["needsenv"]["last_error"]
    assert nodes["hangy"]["last_error"] == "handshake failed: plugin hangy did not answer initialize within 1s"
    # a plugin that dies in the middle of its handshake: each death is one restart, and the
    # failed handshake of a dead process never reaches (kills) its replacement
    exiter = wait_until(lambda: (n := node(env, "exiter")) and n["state"] == "disabled" and n, timeout=15,
                        what="exiter to be disabled")
    assert exiter["restarts"] == 5 and exiter["last_error"] == "exited with code 7"
    log = Path(env.call("daemon/status")["state_root"]) / "logs" / "events.jsonl"

    def exit_codes() -> list[int | None]:
        return [e["data"]["exit_code"] for e in map(json.loads, log.read_text().splitlines())
                if e["kind"] == "child_exited" and e["data"].get("child") == "exiter"]

    wait_until(lambda: len(exit_codes()) >= 6, timeout=5, what="exiter's exits in the event log")
    assert exit_codes() == [7] * 6  # no replacement was killed by its predecessor's failed handshake
    good = node(env, "good")
    assert good is not None and good["state"] == "running" and good["restarts"] == 0
    # the daemon and its supervisors kept running through all of it
    status = env.json("daemon", "status")
    for sup in status["tree"]:
        if sup["name"] in ("providers", "transports", "workflows"):
            assert sup["state"] == "running" and sup["restarts"] == 0, sup
    counters = wait_until(lambda: (c := env.call("daemon/metrics")["counters"]) and all(
        f"plugin_disabled_total{{plugin={name}}}" in c for name in MISBEHAVING) and c, timeout=5,
        what="plugin_disabled_total for each")
    for name in MISBEHAVING:
        assert counters[f"plugin_disabled_total{{plugin={name}}}"] == 1
    health = env.run("daemon", "health", "--json")
    assert health.returncode == 5, health.stderr
    report = json.loads(health.stdout)
    assert report["daemon"]["status"] == "healthy"
    rows = {r["plugin"]: r for r in report["plugins"]}
    assert rows["good"]["status"] == "healthy" and rows["good"]["source"] == "live"
    for name in MISBEHAVING:
        assert rows[name]["status"] == "unhealthy" and rows[name]["restarts"] == 5
        assert rows[name]["last_error"] == nodes[name]["last_error"]
    # the subject plugin is not run by this daemon (kill switch): not spawned, and not a failure
    assert rows["tasks"] == {"plugin": "tasks", "role": "subject", "status": "skipped", "source": "daemon",
                             "last_error": "skipped: ANIMUS_DAEMON_DISABLE_SUBJECT_PLUGINS is set"}
    text = env.run("daemon", "health")
    assert text.returncode == 5
    lines = text.stdout.splitlines()
    assert lines[0].startswith("daemon: Healthy (pid ")
    line = next(ln for ln in lines if ln.startswith("wrongproto"))
    assert line.split()[:5] == ["wrongproto", "transport", "Unhealthy", "[supervisor]", "restarts=5"]
    assert "last_error: handshake failed: protocol version mismatch" in line


def test_daemon_call_sees_only_declared_env_in_the_project_root(daemon_up: Env) -> None:
    env = daemon_up
    wait_until(lambda: (n := node(env, "good")) and n["state"] == "running", timeout=10, what="good to run")
    reply = env.json("plugin", "call", "--name", "good", "--method", "probe/env")
    assert reply["via"] == "daemon"
    assert_filtered(reply["result"], env.project)
    assert reply["result"]["env"]["ANIMUS_BUS_IN"].startswith("ipc://")
    pinged = env.json("plugin", "call", "--name", "good", "--method", "$/ping")
    assert pinged["result"]["pong"] is True
    listing = {r["name"]: r for r in env.json("plugin", "list")["plugins"]}
    assert listing["good"]["state"] == "running" and listing["crashy"]["state"] == "disabled"
    assert listing["tasks"]["state"] == "not running"


def test_kill_switches_stop_subjects_and_triggers_with_the_reason(daemon_up: Env) -> None:
    env = daemon_up
    tree = {sup["name"]: sup for sup in env.json("daemon", "status")["tree"]}
    for name, switch in (("subjects", "ANIMUS_DAEMON_DISABLE_SUBJECT_PLUGINS"),
                         ("triggers", "ANIMUS_DAEMON_DISABLE_TRIGGERS")):
        assert tree[name]["state"] == "stopped" and tree[name]["pid"] is None
        assert tree[name]["last_error"] == f"skipped: {switch} is set"
    text = env.run("daemon", "status", check=True).stdout
    line = next(ln for ln in text.splitlines() if "triggers" in ln)
    assert "stopped" in line and "ANIMUS_DAEMON_DISABLE_TRIGGERS" in line
    listed = env.run("subject", "list", "--kind", "task")
    assert listed.returncode == 3
    assert listed.stderr.strip() == (
        "error: subject plugins are disabled (skipped: ANIMUS_DAEMON_DISABLE_SUBJECT_PLUGINS is set) "
        "(fix: unset ANIMUS_DAEMON_DISABLE_SUBJECT_PLUGINS and restart the daemon)")


# -- installs, plugins.yaml, preflight (no daemon) ---------------------------------------------


def registry(env: Env) -> dict[str, Any]:
    path = env.home / "plugins.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {"plugins": {}}  # type: ignore[no-any-return]


def leftovers(env: Env) -> list[str]:
    """Temp files and staging folders an install must never leave behind."""
    plugins = env.home / "plugins"
    return sorted(p.name for p in [*plugins.iterdir(), *env.home.iterdir()]
                  if p.name.endswith(".tmp") or p.name.startswith((".install-", ".plugins.yaml.")) or
                  p.name.endswith(".old"))


def test_install_from_folder_reinstall_uninstall(env: Env, tmp_path: Path) -> None:
    folder = write_plugin(tmp_path / "src", "alpha")
    first = env.run("plugin", "install", str(folder))
    assert first.returncode == 0 and "installed alpha 0.0.1 (provider)" in first.stderr
    entry = registry(env)["plugins"]["alpha"]
    assert entry["source"] == f"path:{folder.resolve()}" and entry["signature"] == {"status": "unverified", "policy": "warn"}
    assert (env.home / "plugins" / "alpha" / "run.sh").is_file()
    again = env.run("plugin", "install", str(folder))
    assert again.returncode == 0 and "alpha 0.0.1 already installed" in again.stderr
    listed = env.run("plugin", "list", check=True).stdout.splitlines()
    assert listed[0].split() == ["NAME", "ROLE", "VERSION", "SIG", "STATE", "SOURCE"]
    assert listed[1].split()[:5] == ["alpha", "provider", "0.0.1", "unverified", "not"]
    assert env.run("plugin", "ping", "--name", "alpha").returncode == 0
    gone = env.run("plugin", "uninstall", "--name", "alpha")
    assert gone.returncode == 0 and gone.stdout.strip() == "uninstalled alpha"
    assert "alpha" not in registry(env)["plugins"] and not (env.home / "plugins" / "alpha").exists()
    missing = env.run("plugin", "uninstall", "--name", "alpha")
    assert missing.returncode == 3 and "plugin 'alpha' is not installed" in missing.stderr
    assert leftovers(env) == []


def test_install_tarball_under_each_signature_policy(env: Env, tmp_path: Path) -> None:
    folder = write_plugin(tmp_path / "src", "beta")
    tarball = tmp_path / "beta-0.0.1.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="beta")
    strict = env.run("plugin", "install", str(tarball), "--signature-policy", "strict")
    assert strict.returncode == 2
    assert strict.stderr.strip().splitlines() == [
        "error: plugin signature verification failed",
        "  plugin: beta-0.0.1.tar.gz",
        "  policy: strict",
        "  reason: no signature bundle was published with the artifact",
    ]
    assert "beta" not in registry(env)["plugins"] and not (env.home / "plugins" / "beta").exists()
    assert leftovers(env) == []
    warn = env.run("plugin", "install", str(tarball))  # warn is the default
    assert warn.returncode == 0, warn.stderr
    assert "warning: signature unsigned: no signature bundle was published with the artifact (policy warn)" \
        in warn.stderr
    entry = registry(env)["plugins"]["beta"]
    assert entry["source"] == f"tarball:{tarball.resolve()}"
    assert entry["signature"]["status"] == "unsigned" and entry["signature"]["policy"] == "warn"
    disabled = env.json("plugin", "install", str(tarball), "--force", "--signature-policy", "disabled")
    assert disabled["installed"]["signature"]["status"] == "skipped"
    assert env.run("plugin", "ping", "--name", "beta").returncode == 0  # the unpacked copy runs
    assert leftovers(env) == []


@pytest.mark.needs_shared(BUNDLE)
def test_install_tarball_with_another_artifacts_bundle(env: Env, tmp_path: Path) -> None:
    folder = write_plugin(tmp_path / "src", "beta")
    tarball = tmp_path / "beta-0.0.1.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="beta")
    disabled = env.json("plugin", "install", str(tarball), "--signature-policy", "disabled")
    assert disabled["installed"]["signature"]["status"] == "skipped"
    # a real Sigstore bundle, but for another artifact: verification fails on the digest
    (tmp_path / "beta-0.0.1.tar.gz.bundle").write_bytes(BUNDLE.read_bytes())
    refused = env.run("plugin", "install", str(tarball), "--force", "--signature-policy", "strict")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert lines[0] == "error: plugin signature verification failed" and lines[2] == "  policy: strict"
    assert lines[3] == "  reason: artifact digest does not match the bundle (tampered artifact?)"
    assert registry(env)["plugins"]["beta"]["signature"]["status"] == "skipped"  # untouched
    warned = env.run("plugin", "install", str(tarball), "--force")  # warn too: a bundle that fails is refused
    assert warned.returncode == 2 and "  policy: warn" in warned.stderr.splitlines()
    assert registry(env)["plugins"]["beta"]["signature"]["status"] == "skipped"  # untouched
    assert leftovers(env) == []


def test_install_release_offline_is_one_line_and_exit_5(env: Env) -> None:
    env.env |= {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    env.env.pop("no_proxy", None)
    env.env.pop("NO_PROXY", None)
    out = env.run("plugin", "install", "acme/animus-plugin-foo@v1.2.3")
    assert out.returncode == 5
    lines = out.stderr.strip().splitlines()
    assert lines[0] == "downloading acme/animus-plugin-foo@v1.2.3 …"
    assert len(lines) == 2 and lines[1].startswith("error: cannot download acme/animus-plugin-foo@v1.2.3 "
                                                   "from GitHub: "), out.stderr
    assert "fix: check network access" in lines[1] and "Traceback" not in out.stderr
    as_json = env.run("plugin", "install", "acme/animus-plugin-foo@v1.2.3", "--json")
    assert as_json.returncode == 5 and as_json.stdout == ""
    assert json.loads(as_json.stderr)["error"]["code"] == "unavailable"
    assert not (env.home / "plugins").exists() or leftovers(env) == []


def test_update_dry_run_changes_nothing(env: Env, tmp_path: Path) -> None:
    folder = write_plugin(tmp_path / "src", "gamma")
    env.run("plugin", "install", str(folder), check=True)
    before = registry(env)
    assert env.json("plugin", "update", "--dry-run")["plugins"] == [
        {"name": "gamma", "action": "up-to-date", "detail": str(folder.resolve())}]
    (folder / "run.sh").write_text((folder / "run.sh").read_text() + "# changed\n")
    text = env.run("plugin", "update", "gamma", "--dry-run")
    assert text.returncode == 0 and text.stdout.split()[:2] == ["gamma", "would-update"]
    assert registry(env) == before
    assert "# changed" not in (env.home / "plugins" / "gamma" / "run.sh").read_text()
    updated = env.json("plugin", "update", "gamma")
    assert updated["plugins"][0]["action"] == "updated"
    assert "# changed" in (env.home / "plugins" / "gamma" / "run.sh").read_text()
    unknown = env.run("plugin", "update", "nope", "--dry-run")
    assert unknown.returncode == 3


def test_concurrent_installs_from_several_processes_are_all_recorded(env: Env, tmp_path: Path) -> None:
    names = [f"conc{i}" for i in range(6)]
    folders = [write_plugin(tmp_path / "src", name) for name in names]
    procs = [cli(env, "plugin", "install", str(f)) for f in folders]
    results = [done(p) for p in procs]
    assert all(r.code == 0 for r in results), [r.err for r in results]
    data = registry(env)
    assert data["schema"] == "animus.plugins.v1" and sorted(data["plugins"]) == names
    for name in names:
        assert data["plugins"][name]["path"] == str(env.home / "plugins" / name)
    assert leftovers(env) == []
    assert oct((env.home / "plugins.yaml").stat().st_mode & 0o777) == "0o644"


def test_preflight_exit_codes_text_and_json(env: Env) -> None:
    empty = env.run("daemon", "preflight")
    assert empty.returncode == 2 and empty.stdout == ""
    assert empty.stderr.strip().splitlines() == [
        "error: daemon preflight failed",
        "  provider: 0 installed (need at least one)",
        "  subject: 0 installed (need at least one)",
        "  fix: animus plugin install-defaults --include-subjects",
    ]
    as_json = env.run("daemon", "preflight", "--json")
    assert as_json.returncode == 2
    report = json.loads(as_json.stdout)
    assert report["schema"] == "animus.daemon.preflight.v1"
    assert {"satisfied", "missing", "auto_installed", "ok", "fix_message"} <= set(report)
    assert report["ok"] is False and report["missing"] == ["provider", "subject"]
    assert report["fix_message"] == "animus plugin install-defaults --include-subjects"
    base = env.json("plugin", "install-defaults")
    assert base["installed"] == ["claude", "codex", "gemini", "opencode", "oai"]
    half = env.run("daemon", "preflight")
    assert half.returncode == 2
    assert half.stderr.strip().splitlines()[1:] == ["  subject: 0 installed (need at least one)",
                                                    "  fix: animus plugin install-defaults --include-subjects"]
    auto = env.run("daemon", "preflight", "--auto-install")
    assert auto.returncode == 0, auto.stderr
    # the subject set is whatever this build ships, listed in the runbook's order
    subjects = [n for n in DEFAULT_SETS["subjects"] if n in builtin_catalog()]
    assert subjects[0] == "default"
    assert auto.stdout.strip().splitlines() == [
        "Daemon preflight OK",
        "provider: 5 installed (claude, codex, gemini, opencode, oai)",
        f"subject: {len(subjects)} installed ({', '.join(subjects)})",
        "transport+ui: 0 installed",
        f"auto-installed: {', '.join(subjects)}",
    ]
    ok = env.json("daemon", "preflight")
    assert ok["ok"] is True and ok["missing"] == [] and ok["fix_message"] is None
    assert ok["satisfied"]["subject"] == subjects
    # install-defaults is idempotent: nothing to do the second time
    again = env.run("plugin", "install-defaults", "--include-subjects")
    assert again.returncode == 0 and again.stdout.strip() == "installed 0 plugin(s) (all up to date)"
    assert "claude 0.5.0 already installed" in again.stderr
    assert env.json("plugin", "update", "--dry-run")["plugins"][0]["action"] == "up-to-date"
    # a plugins.yaml that cannot be read is a discovery failure: exit 1, one line
    (env.home / "plugins.yaml").write_text("plugins: [not: a map\n")
    broken = env.run("daemon", "preflight")
    assert broken.returncode == 1
    assert broken.stderr.startswith("error: plugin discovery failed: ") and len(broken.stderr.splitlines()) == 1


# -- the host's side of a plugin exit ----------------------------------------------------------


def test_a_reply_sent_just_before_the_exit_still_answers_the_call(tmp_path: Path) -> None:
    """The exit of a plugin and its last reply race to the host's event loop, and the
    exit may be handled first in the very iteration that brings the reply (a stopped
    provider answers its pending run, then exits): the call must get that reply."""
    async def scenario() -> Any:
        ctx = zmq.asyncio.Context()
        endpoint = f"ipc://{tmp_path / 'plugins.sock'}"
        host = PluginHost(ctx, endpoint, lambda *_: True, lambda *_: None, lambda *_: None, handshake_timeout=60)
        host.start()
        plugin_ctx = zmq.Context()
        plugin = plugin_ctx.socket(zmq.DEALER)  # a plugin's socket, driven by hand
        plugin.setsockopt(zmq.IDENTITY, b"late:4242")
        plugin.connect(endpoint)
        try:
            plugin.send(pack({"jsonrpc": "2.0", "method": "$/ready", "params": {"pid": 4242, "name": "late"}}))
            await asyncio.wait_for(_until(lambda: "late" in host.peers), 10)
            call = asyncio.get_running_loop().create_task(host.request("late", "agent/run", {}, timeout=30))
            while True:  # skip the handshake's initialize; answer the run
                await asyncio.wait_for(_until(lambda: plugin.poll(0)), 10)
                msg = unpack(plugin.recv())
                if msg.get("method") == "agent/run":
                    break
            plugin.send(pack({"jsonrpc": "2.0", "id": msg["id"], "result": {"verdict": "fail"}}))
            time.sleep(0.2)  # the loop is blocked: the reply waits in the host's socket, unread
            host.forget("late")  # ... and the exit is handled first
            return await asyncio.wait_for(call, 10)
        finally:
            plugin.close(linger=0)
            plugin_ctx.term()
            host.close()
            ctx.term()

    assert asyncio.run(scenario()) == {"verdict": "fail"}


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


def test_a_plugin_gone_before_its_handshake_is_not_failed_for_the_handshake(tmp_path: Path) -> None:
    """A plugin that announced itself and died at once (a crash at start): the host's
    initialize finds no one to reach. That is the exit's to report, with the plugin's own
    reason (its stderr), not a "handshake failed: not reachable" that hides it."""
    failed: list[tuple[str, str]] = []

    async def scenario() -> None:
        ctx = zmq.asyncio.Context()
        endpoint = f"ipc://{tmp_path / 'plugins.sock'}"
        host = PluginHost(ctx, endpoint, lambda *_: True, lambda child, why: failed.append((child, why)),
                          lambda *_: None, handshake_timeout=60)
        host.start()
        plugin_ctx = zmq.Context()
        plugin = plugin_ctx.socket(zmq.DEALER)
        plugin.setsockopt(zmq.IDENTITY, b"crashy:4343")
        plugin.connect(endpoint)
        try:
            plugin.send(pack({"jsonrpc": "2.0", "method": "$/ready", "params": {"pid": 4343, "name": "crashy"}}))
            plugin.close(linger=1000)  # ... and it dies
            time.sleep(0.3)  # the loop is blocked: the announcement and the disconnect both arrive
            await asyncio.wait_for(_until(lambda: "crashy" in host.peers), 10)
            await asyncio.sleep(0.5)  # the handshake's initialize has found no one by now
        finally:
            plugin_ctx.term()
            host.close()
            ctx.term()

    asyncio.run(scenario())
    assert failed == []
