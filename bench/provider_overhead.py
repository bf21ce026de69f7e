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

The stand-in replays the recorded ``success`` stream, so those figures are the
plumbing's cost, not a model's.

Then the **real CLIs** (the pinned npm packages from ``scripts/install-agent-clis``),
each against the same scripted loopback model server (``tests/agent_cli_server.py``:
one shell tool call that writes a file, then a verdict), per provider and
interleaved: the CLI invoked directly with exactly the argv and environment
its plugin would use, against ``agent/run`` through the daemon (permissions,
workspace fingerprint, bus events, verdict). Target (none was set before):
the daemon path adds at most 10% to a real CLI run (median). The last line
says whether every provider met it.

Usage: ``python bench/provider_overhead.py [--runs N] [--real-runs N]``.
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
sys.path.insert(0, str(ROOT / "tests"))
import agent_cli_support as clis
from agent_cli_server import Say, ScriptedModels, Shell
from daemon_setup import BIN, plugins_config, prompt, standin_environment

from animus.plugins.providers import CLI_VENDORS
from animus.plugins.providers.claude import engine as claude
from animus.plugins.providers.verdict import verdict_instructions
from animus.workflow.permissions import AgentPermissions

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
    parser.add_argument("--real-runs", type=int, default=5)
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
    if clis.missing():
        print(f"real CLIs: skipped ({clis.install_hint()})")
        print("target (real CLIs, daemon adds <= 10%): NOT measured")
        return 1
    return real_clis(args.real_runs)


TARGET = 1.10  # daemon / direct, median, per provider


def real_direct(vendor: str, env: dict[str, str], project: Path, text: str) -> float:
    engine = CLI_VENDORS[vendor]
    scratch = Path(tempfile.mkdtemp(prefix="animus-bench-launch-"))
    launch = engine.launch(AgentPermissions(), env, scratch)
    argv = engine.build_argv(str(clis.binary(vendor)), f"{text}\n\n{verdict_instructions()}",
                             clis.MODELS[vendor], None, None, list(launch.args))
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=project, env=env | launch.env | {"PWD": str(project)},
                          capture_output=True, timeout=180, check=False, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    assert proc.returncode == 0 and b"advance" in proc.stdout, proc.stderr[-2000:]
    return elapsed


def real_daemon(vendor: str, project: Path, text: str) -> float:
    from animus.cli import context

    params = {"prompt": text, "model": clis.MODELS[vendor], "cwd": str(project), "timeout": 180}
    started = time.perf_counter()
    reply = context.call("plugin/call", {"name": vendor, "method": "agent/run", "params": params,
                                         "timeout": 200}, timeout=210)
    elapsed = time.perf_counter() - started
    assert reply["result"]["verdict"] == "advance", reply
    return elapsed


def real_clis(runs: int) -> int:
    models = ScriptedModels()
    base = Path(tempfile.mkdtemp(prefix="animus-bench-clis-"))
    project = base / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    env = clis.cli_environment(environ | {"ANIMUS_HOME": str(base / "home")}, models.url, base / "user")
    os.environ["ANIMUS_HOME"] = env["ANIMUS_HOME"]
    started = False
    rows: list[tuple[str, float, float]] = []
    try:
        animus(env, project, "plugin", "install-defaults")
        (project / ".animus").mkdir()
        (project / ".animus" / "config.yaml").write_text(json.dumps({"plugins": clis.plugins_config()}))
        animus(env, project, "daemon", "start", "--skip-preflight", "--json")
        started = True
        from animus.cli import context

        context.set_project_root(str(project))
        context.control.cache_clear()  # the stand-in part's daemon is gone
        deadline = time.monotonic() + 30
        while not all(any(r["name"] == v and r["state"] == "running" for r in context.call("plugin/list"))
                      for v in clis.VENDORS):
            if time.monotonic() > deadline:
                raise SystemExit("the four CLI providers did not start within 30 s")
            time.sleep(0.1)
        for vendor in clis.VENDORS:
            marker = models.script(f"bench-{vendor}", Shell(f"printf bench > bench-{vendor}.txt"),
                                   Say(clis.verdict("benchmarked")))
            text = f"Write the file {marker}"
            real_direct(vendor, env, project, text)  # warm caches on both paths
            real_daemon(vendor, project, text)
            direct, daemon = [], []
            for _ in range(runs):
                direct.append(real_direct(vendor, env, project, text))
                daemon.append(real_daemon(vendor, project, text))
            rows.append((vendor, statistics.median(direct), statistics.median(daemon)))
            print(f"{vendor}:")
            print("  " + describe("direct", direct))
            print("  " + describe("daemon", daemon))
    finally:
        if started:
            animus(env, project, "daemon", "stop")
        models.close()
        shutil.rmtree(base, ignore_errors=True)
    print("real CLIs, daemon -> plugin -> CLI against the CLI invoked directly (same server, same run):")
    for vendor, d, a in rows:
        print(f"  {vendor:<9} direct {d * 1000:8.1f} ms  daemon {a * 1000:8.1f} ms  "
              f"added {(a - d) * 1000:7.1f} ms  ratio {a / d:.2f}x")
    missed = [v for v, d, a in rows if a / d > TARGET]
    verdict = "met" if not missed else f"NOT met ({', '.join(missed)})"
    print(f"target daemon/direct <= {TARGET:.2f} per provider (median): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
