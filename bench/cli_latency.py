"""CLI latency: every everyday command against a running daemon with the 16 default plugins.

Each command is the real ``animus`` script in a new process, as scripts and
health checks run it, timed beside ``python -c pass`` in the same run,
interleaved round by round so that machine load hits both alike. Printed per
command: median, its ratio to ``python -c pass``, and the modules the command
imported that the fast path must not need (typer, click, rich, structlog,
psutil, yaml, sigstore, zmq). Target: every median <= 2x ``python -c pass``.
It also checks that the fast path and the Typer app print the same answer.

Run: ``.venv/bin/python bench/cli_latency.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bytecode import compile_package
from animus.plugin_runtime.catalog import DEFAULT_SETS
from _daemon import running_daemon

TARGET = 2.0
DEFAULTS = tuple(name for names in DEFAULT_SETS.values() for name in names)  # the 16 first-party plugins
HEAVY = ("typer", "click", "rich", "structlog", "psutil", "yaml", "sigstore", "zmq")
# (label, argv); {wf} and {task} are filled in once the daemon has them
COMMANDS = [
    ("--version", ["--version"]),
    ("daemon status --json", ["daemon", "status", "--json"]),
    ("daemon status", ["daemon", "status"]),
    ("daemon health --json", ["daemon", "health", "--json"]),
    ("daemon metrics --json", ["daemon", "metrics", "--json"]),
    ("daemon logs --limit 20", ["daemon", "logs", "--limit", "20"]),
    ("logs tail --limit 20", ["logs", "tail", "--limit", "20"]),
    ("workflow list --json", ["workflow", "list", "--json"]),
    ("workflow get <id> --json", ["workflow", "get", "{wf}", "--json"]),
    ("workflow run --title x --json", ["workflow", "run", "--title", "bench", "--json"]),
    ("workflow cancel <id> --json", ["workflow", "cancel", "{wf}", "--json"]),
    ("workflow resume <id> --json", ["workflow", "resume", "{wf}", "--json"]),
    ("subject list --kind task --json", ["subject", "list", "--kind", "task", "--json"]),
    ("subject get --id <task> --json", ["subject", "get", "--id", "{task}", "--json"]),
    ("subject create --title x --json", ["subject", "create", "--title", "bench", "--json"]),
    ("subject status ... --json", ["subject", "status", "--id", "{task}", "--status", "backlog", "--json"]),
    ("plugin list --json", ["plugin", "list", "--json"]),
    ("plugin info --name default --json", ["plugin", "info", "--name", "default", "--json"]),
]
# what imports: the same process, with -X importtime, whose top-level modules we read back
PROBE = "import runpy, sys; sys.argv = ['animus'] + sys.argv[1:]; runpy.run_module('animus.cli.main', run_name='__main__')"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("animus")
    return [str(script)] if script.exists() else [sys.executable, "-m", "animus.cli.main"]


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    return (time.perf_counter() - start) * 1000, proc


def _heavy_imports(args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", PROBE, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return sorted(h for h in HEAVY if h in names)


def _same_as_typer(args: list[str], env: dict[str, str], cwd: Path) -> bool:
    """The fast path's answer equals the Typer app's (volatile fields dropped)."""
    typer_path = ("import sys; sys.argv = ['animus'] + sys.argv[1:]; "
                  "from animus.cli.main import _app; _app()(prog_name='animus')")
    outs = [subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60).stdout
            for argv in ([*_cli(), *args], [sys.executable, "-c", typer_path, *args])]
    docs = []
    for out in outs:
        doc = json.loads(out)
        doc.pop("uptime_seconds", None)
        doc.get("daemon", {}).pop("uptime_seconds", None)
        for row in doc.get("plugins", []):
            for key in ("latency_ms", "uptime_ms", "result"):
                row.pop(key, None)
        docs.append(doc)
    return docs[0] == docs[1]


def _setup(run: list[str], env: dict[str, str], cwd: Path) -> dict[str, str]:
    task = json.loads(subprocess.run([*run, "subject", "create", "--title", "bench", "--json"], env=env, cwd=cwd,
                                     capture_output=True, text=True, check=True).stdout)["subject"]["id"]
    wf = json.loads(subprocess.run([*run, "workflow", "run", "--title", "bench", "--json"], env=env, cwd=cwd,
                                   capture_output=True, text=True, check=True).stdout)["workflow_id"]
    return {"{task}": task, "{wf}": wf}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    note = compile_package()
    run = _cli()
    print(f"cli latency: {len(COMMANDS)} commands, {a.runs} rounds; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}; {note}")
    with running_daemon(plugins=DEFAULTS) as d:
        fill = _setup(run, d.env, d.project)
        argvs = [[fill.get(x, x) for x in args] for _, args in COMMANDS]
        plugins = len(json.loads(subprocess.run([*run, "plugin", "list", "--json"], env=d.env, cwd=d.project,
                                                capture_output=True, text=True).stdout)["plugins"])
        print(f"  daemon up with {plugins} plugins")
        for args in argvs:
            ms, proc = _timed([*run, *args], d.env, d.project)
            if proc.returncode not in (0, 4, 5):  # health exits 5 (claude is used, not installed); resume 4
                print(f"  animus {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[:200]}")
                return 1
        same = all(_same_as_typer(args, d.env, d.project) for args in
                   (["daemon", "status", "--json"], ["subject", "list", "--kind", "task", "--json"],
                    ["workflow", "list", "--json"], ["plugin", "list", "--json"]))
        print(f"  fast path and Typer app print the same answers: {'yes' if same else 'NO'}")
        times: list[list[float]] = [[] for _ in COMMANDS]
        base: list[float] = []
        for _ in range(a.runs):
            base.append(_timed([sys.executable, "-c", "pass"], d.env, d.project)[0])
            for i, args in enumerate(argvs):
                times[i].append(_timed([*run, *args], d.env, d.project)[0])
        heavy = [_heavy_imports(args, d.env, d.project) for args in argvs]
    floor = statistics.median(base)
    print(f"  {'python -c pass':<36} median {floor:6.1f} ms")
    missed = []
    for (label, _), samples, mods in zip(COMMANDS, times, heavy):
        med = statistics.median(samples)
        ratio = med / floor
        if ratio > TARGET:
            missed.append(label)
        print(f"  {label:<36} median {med:6.1f} ms  {ratio:4.2f}x" + (f"  imports {', '.join(mods)}" if mods else ""))
    worst = max(statistics.median(s) / floor for s in times)
    print(f"target every command <= {TARGET:g}x python -c pass (worst {worst:.2f}x): "
          + ("met" if not missed else f"MISSED by {', '.join(missed)}"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
