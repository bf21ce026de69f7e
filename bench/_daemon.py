"""Shared by the benchmarks: a real daemon in a throwaway ANIMUS_HOME.

Not a benchmark itself (``make bench`` runs it as one; it does nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ANIMUS = [sys.executable, "-m", "animus.cli.main"]


@dataclass
class BenchDaemon:
    home: Path
    project: Path
    env: dict[str, str]
    state_root: Path

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ANIMUS, *args], cwd=self.project, env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(argv, cwd=self.project, env=self.env, **kwargs)

    def endpoint(self, name: str) -> str:
        from animus.state.scope import Scope

        scope = Scope(project_root=self.project.resolve(), name=self.state_root.name,
                      home=self.home, root=self.state_root)
        return scope.endpoint(name)

    @property
    def events_log(self) -> Path:
        return self.state_root / "logs" / "events.jsonl"


@contextmanager
def running_daemon(plugins: tuple[str, ...] = (),
                   prepare: Callable[[Path, dict[str, str]], None] | None = None) -> Iterator[BenchDaemon]:
    """Start ``animus daemon start --skip-preflight`` in a temp home, with these
    first-party plugins installed (``builtin:<name>``); always stop it.

    ``prepare(project, env)`` runs before the start (write YAML, make commits)."""
    tmp = Path(tempfile.mkdtemp(prefix="animus-bench-"))
    project = tmp / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    env.update({"ANIMUS_HOME": str(tmp / "home"), "PYTHONUNBUFFERED": "1"})
    for name in plugins:
        subprocess.run([*ANIMUS, "plugin", "install", f"builtin:{name}"], cwd=project, env=env,
                       capture_output=True, timeout=120, check=True)
    if prepare is not None:
        prepare(project, env)
    started = subprocess.run([*ANIMUS, "daemon", "start", "--skip-preflight", "--json"], cwd=project,
                             env=env, capture_output=True, text=True, timeout=120, check=False)
    if started.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SystemExit(f"daemon start failed: {started.stderr}")
    info = json.loads(started.stdout.strip().splitlines()[-1])
    daemon = BenchDaemon(tmp / "home", project, env, Path(info["state_root"]))
    try:
        yield daemon
    finally:
        daemon.run("daemon", "stop", "--shutdown-timeout-secs", "20")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0)
