"""`make demo`: the daemon on its embedded defaults, one workflow through it, streamed.

Everything lives under ./.demo (its own ANIMUS_HOME and a throwaway git
project), so the demo never touches ~/.animus. Each step prints the command
it runs, so it doubles as a tour of the CLI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
ANIMUS = str(Path(sys.executable).with_name("animus"))


def step(*args: str, capture: bool = False) -> str:
    print(f"\n$ animus {' '.join(args)}", flush=True)
    proc = subprocess.run([ANIMUS, *args], cwd=DEMO / "project", env=ENV, text=True,
                          stdout=subprocess.PIPE if capture else None)
    if proc.returncode != 0:
        print(f"demo: 'animus {' '.join(args)}' exited {proc.returncode}", file=sys.stderr)
        stop()
        sys.exit(proc.returncode)
    if capture:
        print(proc.stdout.strip())
    return proc.stdout or ""


def stop() -> None:
    subprocess.run([ANIMUS, "daemon", "stop"], cwd=DEMO / "project", env=ENV, capture_output=True)


shutil.rmtree(DEMO, ignore_errors=True)
(DEMO / "project").mkdir(parents=True)
subprocess.run(["git", "init", "-q", str(DEMO / "project")], check=True)
ENV = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
ENV["ANIMUS_HOME"] = str(DEMO / "home")
print(f"demo: ANIMUS_HOME={ENV['ANIMUS_HOME']}, project {DEMO / 'project'}")

step("--version")
step("plugin", "install-defaults", "--include-subjects")
step("daemon", "preflight")
step("daemon", "start")
try:
    step("daemon", "status")
    step("subject", "create", "--title", "Say hello from the demo", "--status", "ready")
    run = json.loads(step("workflow", "run", "--task-id", "TASK-001", "--json", capture=True))
    wf = run["workflow_id"]
    step("daemon", "stream", "--workflow", wf, "--pretty", "--tail", "200")
    step("workflow", "get", wf)
    step("subject", "get", "--kind", "task", "--id", "task:TASK-001")
    step("daemon", "metrics", "--pretty")
finally:
    step("daemon", "stop")
print("\ndemo: done. Events are in", next((DEMO / "home").glob("*/logs/events.jsonl"), "logs/events.jsonl"))
