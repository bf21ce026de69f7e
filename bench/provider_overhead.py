"""What the provider plugin path adds to an agent run.

Compares, in the same run and interleaved (so machine load hits both alike):

* **direct**: the claude stand-in CLI started with ``subprocess`` and read to
  the end, as a script would call it;
* **daemon**: ``agent/run`` sent on the control socket (``plugin/call``) to a
  real daemon, which hands it to the claude provider plugin, which runs the
  same stand-in through ``run_cli``, publishes every event on the bus, reads
  the verdict and replies;
* **cli**: the same through ``animus plugin call`` (adds the CLI's own
  interpreter start-up, what an operator sees from a shell).

The stand-in replays the recorded ``success`` stream (9 lines), so the figures
are the plumbing's cost, not a model's. Usage: ``python bench/provider_overhead.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "providers"))
from daemon_setup import BIN, plugins_config, prompt, standin_environment

from animus.plugins.providers.claude import engine as claude
from animus.plugins.providers.verdict import verdict_instructions

ANIMUS = [sys.executable, "-m", "animus.cli.main"]


def animus(env: dict[str, str], project: Path, *args: str) -> str:
    proc = subprocess.run(
        [*ANIMUS, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"animus {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
        )
    return proc.stdout


def direct_run(env: dict[str, str], project: Path, text: str) -> float:
    argv = claude.build_argv(str(BIN / "claude"), f"{text}\n\n{verdict_instructions()}", None)
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=project, env=env, capture_output=True, timeout=60, check=False)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0 and b'"type":"result"' in proc.stdout, proc.stderr
    return elapsed


def daemon_run(text: str) -> float:
    from animus.cli import context

    started = time.perf_counter()
    reply = context.call(
        "plugin/call",
        {"name": "claude", "method": "agent/run", "params": {"prompt": text}, "timeout": 60},
        timeout=70,
    )
    elapsed = time.perf_counter() - started
    assert reply["result"]["verdict"] == "advance", reply
    return elapsed


def cli_run(env: dict[str, str], project: Path, text: str) -> float:
    started = time.perf_counter()
    out = animus(
        env,
        project,
        "plugin",
        "call",
        "--name",
        "claude",
        "--method",
        "agent/run",
        "--params",
        json.dumps({"prompt": text}),
        "--json",
    )
    elapsed = time.perf_counter() - started
    assert json.loads(out.strip().splitlines()[-1])["result"]["verdict"] == "advance"
    return elapsed


def describe(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return (
        f"{name:<8} median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms   "
        f"min {ms[0]:7.1f} ms   (n={len(ms)})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--cli-runs", type=int, default=5)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="animus-bench-"))
    project = base / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    environ["ANIMUS_HOME"] = str(base / "home")
    env = standin_environment(environ, base)
    os.environ["ANIMUS_HOME"] = env["ANIMUS_HOME"]
    started = False
    try:
        animus(env, project, "plugin", "install", "claude")
        (project / ".animus").mkdir()
        (project / ".animus" / "config.yaml").write_text(
            json.dumps({"plugins": {"claude": plugins_config(None)["claude"]}})
        )
        animus(env, project, "daemon", "start", "--skip-preflight", "--json")
        started = True
        from animus.cli import context

        context.set_project_root(str(project))
        deadline = time.monotonic() + 20
        while not any(
            r["name"] == "claude" and r["state"] == "running" for r in context.call("plugin/list")
        ):
            if time.monotonic() > deadline:
                raise SystemExit("the claude provider did not start within 20 s")
            time.sleep(0.05)

        text = prompt("Fix the bug.")
        for _ in range(3):  # warm caches on both paths
            direct_run(env, project, text)
            daemon_run(text)
        direct: list[float] = []
        daemon: list[float] = []
        for _ in range(args.runs):
            direct.append(direct_run(env, project, text))
            daemon.append(daemon_run(text))
        cli = [cli_run(env, project, text) for _ in range(args.cli_runs)]
    finally:
        if started:
            animus(env, project, "daemon", "stop")
        shutil.rmtree(base, ignore_errors=True)

    added = statistics.median(daemon) - statistics.median(direct)
    print("agent/run overhead: daemon -> providers supervisor -> claude plugin -> stand-in CLI")
    print(describe("direct", direct))
    print(describe("daemon", daemon))
    print(describe("cli", cli))
    print(
        f"added by the daemon path: {added * 1000:.1f} ms per run (median), "
        f"ratio daemon/direct {statistics.median(daemon) / statistics.median(direct):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
