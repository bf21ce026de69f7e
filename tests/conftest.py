"""Shared fixtures: a private ANIMUS_HOME, a git project, the real CLI, a real daemon.

Every test runs the daemon as a real process tree in a temp ANIMUS_HOME; the
daemon fixture always stops it and then checks with psutil that no process
of the tree is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from animus.process.handle import wait_gone
from animus.testing import WaitTimeout, wait_until

ANIMUS = [sys.executable, "-m", "animus.cli.main"]
CHECKOUT = Path(__file__).resolve().parents[1]
FAST_RESTART = {"max_restarts": 5, "initial": 0.05, "factor": 2.0, "cap": 0.4, "healthy_window": 30.0}


def shared_dir() -> Path:
    """``shared/`` beside the checkout, where CI lays it; from a git worktree, beside
    the main checkout it belongs to (``git rev-parse --git-common-dir``)."""
    beside = CHECKOUT.parent / "shared"
    if beside.is_dir():
        return beside
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=CHECKOUT,
                            capture_output=True, text=True)
    if common.returncode == 0 and common.stdout.strip():
        main = Path(common.stdout.strip()).parent.parent / "shared"
        if main.is_dir():
            return main
    return beside


SIGSTORE_FIXTURES = shared_dir() / "fixtures" / "sigstore"


@pytest.fixture(autouse=True)
def _needs_shared(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.needs_shared(path, ...)``: skip, saying why, where ``shared/`` is not
    beside the checkout; under CI (``CI`` set) it always is, so fail instead."""
    missing = [str(a) for m in request.node.iter_markers("needs_shared") for a in m.args if not Path(a).exists()]
    if not missing:
        return
    why = f"{', '.join(missing)} not found (CI lays shared/ beside the checkout: ../shared)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@dataclass
class Env:
    home: Path
    project: Path
    env: dict[str, str]
    started: list[int] = field(default_factory=list)

    def run(self, *args: str, check: bool = False, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*ANIMUS, *args], cwd=self.project, env=self.env, capture_output=True,
                              text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"animus {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        proc = self.run(*args, "--json", check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def write_config(self, config: dict[str, Any]) -> None:
        (self.project / ".animus").mkdir(exist_ok=True)
        (self.project / ".animus" / "config.yaml").write_text(yaml.safe_dump(config))

    def write_workflows(self, text: str, name: str = "workflows.yaml") -> Path:
        (self.project / ".animus").mkdir(exist_ok=True)
        path = self.project / ".animus" / name
        path.write_text(textwrap.dedent(text))
        return path

    def install_probe(self, name: str, role: str = "provider", mode: str = "ok",
                      kinds: str = "", extra_env: dict[str, str] | None = None) -> Path:
        """Install the scriptable probe worker as a plugin (a real plugin folder)."""
        folder = self.home / "probe-src" / name
        folder.mkdir(parents=True, exist_ok=True)
        wrapper = folder / "run.sh"
        exports = {"PROBE_MODE": mode, "PROBE_ROLE": role, "PROBE_KINDS": kinds, **(extra_env or {})}
        lines = ["#!/bin/sh"] + [f"export {k}='{v}'" for k, v in exports.items()]
        lines.append(f'exec "{sys.executable}" -m animus.testing_worker "$@"')
        wrapper.write_text("\n".join(lines) + "\n")
        wrapper.chmod(0o755)
        manifest = {"name": name, "role": role, "version": "0.0.1", "protocol": "1.0.0",
                    "description": f"probe ({mode})", "command": [str(wrapper)]}
        if role == "subject":
            manifest["kinds"] = kinds.split(",")
        (folder / "animus-plugin.yaml").write_text(yaml.safe_dump(manifest))
        self.run("plugin", "install", str(folder), "--force", check=True)
        return folder

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 10) -> Any:
        """Ask the daemon directly over its control socket (fast polling in waits)."""
        from animus.bus.rpc import ControlClient
        from animus.state.scope import Scope, scope_name

        name = scope_name(self.project)
        scope = Scope(self.project.resolve(), name, self.home, self.home / name)
        client = ControlClient(scope.endpoint("control"), timeout=timeout)
        try:
            return client.call(method, params or {})
        finally:
            client.close()

    def status(self) -> dict[str, Any]:
        """What the operator sees: ``animus daemon status --json`` (a CLI process)."""
        return self.json("daemon", "status")  # type: ignore[no-any-return]

    def tree(self) -> list[dict[str, Any]]:
        """The same tree over the control socket (what ``daemon status`` prints), cheap
        enough to poll: a CLI process per poll costs a core on a loaded machine."""
        return self.call("daemon/status")["tree"]  # type: ignore[no-any-return]

    def node(self, name: str) -> dict[str, Any] | None:
        for sup in self.tree():
            if sup["name"] == name:
                return sup  # type: ignore[no-any-return]
            for child in sup.get("children", []):
                if child["name"] == name:
                    return child  # type: ignore[no-any-return]
        return None

    def start(self, *flags: str) -> dict[str, Any]:
        out = self.json("daemon", "start", *flags)
        self.started.append(out["pid"])
        return out  # type: ignore[no-any-return]

    def tree_pids(self) -> set[int]:
        pids = set()
        for sup in self.tree():
            if sup.get("pid"):
                pids.add(sup["pid"])
            for child in sup.get("children", []):
                if child.get("pid"):
                    pids.add(child["pid"])
        return pids


def alive(pids: set[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.Error:
            continue
    return out


def _descendants(pid: int) -> set[int]:
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    home = tmp_path / "home"
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    environ.update({"ANIMUS_HOME": str(home), "ANIMUS_START_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"})
    e = Env(home, project, environ)
    yield e
    stop_daemons(e)


def stop_daemons(e: Env) -> None:
    """Stop every daemon the test started; fail if any process of a tree is left."""
    leftovers: set[int] = set()
    stuck = []
    for pid in e.started:
        leftovers |= _descendants(pid)
        if alive({pid}):
            e.run("daemon", "stop", "--shutdown-timeout-secs", "20")
            if not wait_gone(pid, 20):  # a zombie awaiting its reaper counts as gone
                stuck.append(pid)
                leftovers |= _descendants(pid) | {pid}
    try:
        wait_until(lambda: not alive(leftovers), timeout=5, what="the daemon tree to be gone")
    except WaitTimeout:
        survivors = alive(leftovers)
        for pid in survivors:
            psutil.Process(pid).kill()
        pytest.fail(f"processes of the daemon tree survived its stop: {survivors}")
    if stuck:
        pytest.fail(f"daemon {stuck} did not stop within 20 s of animus daemon stop (killed)")


@pytest.fixture
def daemon(env: Env) -> Env:
    """A running daemon with fast restarts and no plugins."""
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5})
    env.start("--skip-preflight")
    return env


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``-n N --dist loadgroup`` (``make test``): tests spread one by one over the
    workers, except a module that shares a daemon or a cluster between its tests (a
    module- or session-scoped fixture of its own): its tests stay on one worker, so
    that what they share is started once. First (``tryfirst``): xdist's worker turns
    the ``xdist_group`` marks into node ids in this same hook, and a mark added after
    it has run groups nothing. (pytest 9.2 with xdist 3.8 still loses the group:
    xdist writes ``item._nodeid``, which pytest no longer reads; pytest-xdist#1386.)"""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        shared = [d for defs in info.name2fixturedefs.values() for d in defs
                  if d.scope in ("module", "package", "session") and d.baseid]  # ours, not pytest's own
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
