"""The soak's world: a throwaway ANIMUS_HOME, a git project, plugins, config and workflows.

Every process of the run carries ``SOAK_MARKER=<token>`` in its environment
(the daemon's, passed on to every plugin through ``plugins.<name>.env`` and to
every command phase through ``commands.env``), so that the orphan check can
find a survivor anywhere on the machine, not only among the daemon's
descendants, and so that the chaos never signals a process of anyone else.

The workload's phases each append ``<workflow id> <phase> <attempt>`` to a
ledger outside Animus, so a duplicate or a loss is visible from outside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ANIMUS = [sys.executable, "-m", "animus.cli.main"]
CHECKOUT = Path(__file__).resolve().parents[2]
STANDINS = CHECKOUT / "tests" / "fixtures" / "providers" / "bin"
MARKER_VAR = "SOAK_MARKER"
# fast restarts and a short healthy window: the budget is exercised, and kills spread out
# over more than a second give a fresh budget
RESTART = {"max_restarts": 5, "initial": 0.05, "factor": 2.0, "cap": 0.4, "healthy_window": 1.0}
SUPERVISOR = {"intensity": 50, "period": 10}
POOL_SIZE = 6
PROVIDERS = ("claude", "codex")
SUBJECTS = ("default", "requirements", "sqlite", "markdown")
TRIGGERS = ("cron", "file-watcher")  # first-party, idle without schedules: forked from the zygote
# the scriptable probe (animus.testing_worker) for the transport role: exec'd, not forked (and no port)
PROBES = {"xport": "transport"}
ROLE_OF = {**{n: "trigger" for n in TRIGGERS}, **PROBES}
SACRIFICIAL = ("file-watcher",)  # driven into its restart budget (crash loops), then disabled
SIDE_EFFECTING = ("sideeffecting", "unknown")


@dataclass(frozen=True)
class SoakEnv:
    tmp: Path
    home: Path
    project: Path
    env: dict[str, str]
    marker: str
    ledger: Path

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ANIMUS, *args], cwd=self.project, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def scope(self) -> Any:
        from animus.state.scope import Scope, scope_name

        name = scope_name(self.project)
        return Scope(self.project.resolve(), name, self.home, self.home / name)

    @property
    def state_root(self) -> Path:
        return Path(self.scope().root)

    def endpoint(self, name: str) -> str:
        return str(self.scope().endpoint(name))

    def has_marker(self, environ: dict[str, str]) -> bool:
        return environ.get(MARKER_VAR) == self.marker


def _line(phase_cmd: str) -> dict[str, Any]:
    return {"program": "bash", "args": ["-c", phase_cmd]}


def workflows_yaml(ledger: Path) -> str:
    write = f'echo "$ANIMUS_WORKFLOW_ID $ANIMUS_PHASE $ANIMUS_ATTEMPT" >> {ledger}'
    # serve: a helper "server" grandchild its shell stops on a normal exit; a shell killed
    # mid-phase leaves it behind, unless Animus stops the command's whole group
    server = "sleep 60 >/dev/null 2>&1 & srv=$!; trap 'kill $srv' EXIT; "
    phases = {
        "prep": {"mode": "command", "idempotency": "idempotent",
                 "command": _line(f"{write}; sleep 0.$((RANDOM % 4 + 2))")},  # bash execs the sleep
        "effect": {"mode": "command", "idempotency": "sideeffecting",  # bash stays, the sleep its child
                   "command": _line(f"{write}; sleep 0.$((RANDOM % 6 + 3)); true")},
        "check": {"mode": "command",  # unannotated: recovered like a side-effecting one
                  "command": _line(f"sleep 0.$((RANDOM % 3 + 1)); {write}; sleep 0.$((RANDOM % 3 + 1))")},
        "serve": {"mode": "command", "idempotency": "sideeffecting",
                  "command": _line(f"{server}{write}; sleep 0.$((RANDOM % 5 + 3))")},
        "implement": {"mode": "agent", "agent": "coder", "idempotency": "idempotent",
                      "directive": "Implement the task."},
        "review": {"mode": "agent", "agent": "reviewer", "directive": "Review it."},  # unannotated
    }

    def entries(*names: str) -> list[Any]:
        # a phase whose process was killed returns a fail verdict: the workflow runs it again
        return [{n: {"on_verdict": {"fail": {"target": n}}}} for n in names]

    doc = {
        "agents": {"coder": {"tool": "claude", "model": "claude-sonnet-4-6"},
                   "reviewer": {"tool": "codex", "model": "gpt-5-codex"}},
        "phases": phases,
        "workflows": [{"id": "cmd", "phases": entries("prep", "effect", "check")},
                      {"id": "agent", "phases": entries("implement", "effect", "review")},
                      {"id": "mixed", "phases": entries("prep", "implement", "serve", "check")}],
        "default_workflow_ref": "cmd",
    }
    return yaml.safe_dump(doc, sort_keys=False)


WORKFLOW_REFS = ("cmd", "agent", "mixed")


def config(project: Path) -> dict[str, Any]:
    knobs = [MARKER_VAR, "ANIMUS_STANDIN_DELAY"]
    plugins: dict[str, Any] = {p: {"config": {"binary": str(STANDINS / p)}, "env": knobs} for p in PROVIDERS}
    for name in (*SUBJECTS, *TRIGGERS, *PROBES):
        plugins[name] = {"env": [MARKER_VAR]}
    plugins["sqlite"]["config"] = {"path": "data/subjects.db"}
    return {"pool_size": POOL_SIZE, "interval_secs": 0.5, "ready_timeout": 10, "drain_timeout": 20,
            "restart": RESTART, "supervisor": SUPERVISOR, "commands": {"env": [MARKER_VAR]},
            "plugins": plugins}


def _probe(env: SoakEnv, name: str, role: str) -> Path:
    folder = env.tmp / "probes" / name
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "run.sh"
    wrapper.write_text(f"#!/bin/sh\nexport PROBE_MODE=ok PROBE_ROLE={role}\n"
                       f'exec "{sys.executable}" -m animus.testing_worker "$@"\n')
    wrapper.chmod(0o755)
    manifest = {"name": name, "role": role, "version": "0.0.1", "protocol": "1.0.0",
                "description": f"soak probe ({role})", "command": [str(wrapper)]}
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump(manifest))
    return folder


def prepare(keep: bool = False) -> SoakEnv:
    """Make the world and install everything; nothing is started yet."""
    tmp = Path(tempfile.mkdtemp(prefix="animus-soak-"))
    project = tmp / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANIMUS_", MARKER_VAR))}
    env.update({"ANIMUS_HOME": str(tmp / "home"), "PYTHONUNBUFFERED": "1", MARKER_VAR: marker,
                "ANIMUS_START_TIMEOUT": "120", "ANIMUS_STANDIN_DELAY": "0.1",
                # a frozen plugin is found hung after ~3 s (3 missed pings)
                "ANIMUS_PING_INTERVAL": "1",
                # the stand-ins are `#!/usr/bin/env python3`: this interpreter first on PATH
                "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", os.defpath)})
    soak = SoakEnv(tmp, tmp / "home", project, env, marker, tmp / "ledger.txt")
    soak.ledger.touch()
    animus_dir = project / ".animus"
    animus_dir.mkdir()
    (animus_dir / "config.yaml").write_text(yaml.safe_dump(config(project)))
    (animus_dir / "workflows.yaml").write_text(workflows_yaml(soak.ledger))
    _install_all(soak)
    return soak


def _install_all(soak: SoakEnv) -> None:
    """The same install the CLI does (``animus plugin install``), in this process: ten CLI
    processes would cost ten seconds of the short soak."""
    from animus.plugin_runtime.install import install

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in ("ANIMUS_HOME", "ANIMUS_PLUGIN_DIR")}
    os.environ["ANIMUS_HOME"] = str(soak.home)
    try:
        scope = soak.scope()
        for name in (*PROVIDERS, *SUBJECTS, *TRIGGERS):
            install(scope, name, "warn", True)
        for name, role in PROBES.items():
            install(scope, str(_probe(soak, name, role)), "warn", True)
    finally:
        os.environ.pop("ANIMUS_HOME", None)
        os.environ.update(saved)


def start_daemon(soak: SoakEnv) -> int:
    out = soak.cli("daemon", "start", "--json", timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"animus daemon start failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return int(json.loads(out.stdout.strip().splitlines()[-1])["pid"])


def cleanup(soak: SoakEnv) -> None:
    shutil.rmtree(soak.tmp, ignore_errors=True)
