"""``animus daemon health`` wall time with 1, 8 and 32 plugins, daemon up and daemon down.

Each plugin is the probe worker with a ``health/check`` that takes 20 ms (a
plugin that asks its upstream). Measured in the same run, on this machine:

* **daemon up**: a real daemon (CLI-started, temp ``ANIMUS_HOME``) runs the
  N plugins; we time the whole ``animus daemon health --json`` command (the
  CLI's own start-up included) and, separately, the ``daemon/health`` control
  call alone. The live workers are asked concurrently, so 32 should cost
  about what 1 does. Target: ratio 32:1 <= 1.5.
* **daemon down**: the command spawns every plugin one-shot (handshake,
  ``health/check``, shutdown) concurrently. Here the floor is CPU, not
  waiting: N fresh interpreters must start. So the target compares the wall
  time with the CPU the command and its plugins used (``RUSAGE_CHILDREN``)
  spread over the cores: wall <= 1.2 x (child CPU / cores). Both figures and
  the 32:1 ratio are printed. Because that bound assumes the cores are ours
  alone, the run also measures a baseline under the same load: the same
  number of bare interpreters importing what a plugin imports, started at
  once with nothing else (interleaved with the health runs); its wall / (CPU
  / cores) is what this machine gives right now, and ours is printed against
  it too.

Usage: ``python bench/health_fanout.py [--runs N] [--sizes 1,8,32]``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from animus.bus.rpc import ControlClient
from animus.plugin_runtime.install import install
from animus.state.scope import Scope, scope_name

ANIMUS = [sys.executable, "-m", "animus.cli.main"]
HEALTH_DELAY = 0.020
PLUGIN_PY = f'''
import time
from animus.testing_worker import ProbePlugin
from animus.plugin_runtime.sdk import run_plugin

class SlowHealth(ProbePlugin):
    def health(self):
        time.sleep({HEALTH_DELAY})  # a health check that asks an upstream
        return super().health()

run_plugin(SlowHealth)
'''


class Bench:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.home = base / "home"
        self.project = base / "project"
        self.project.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(self.project)], check=True)
        (self.project / ".animus").mkdir()
        (self.project / ".animus" / "config.yaml").write_text(yaml.safe_dump({"ready_timeout": 30}))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
        self.env |= {"ANIMUS_HOME": str(self.home), "ANIMUS_START_TIMEOUT": "120"}
        name = scope_name(self.project)
        self.scope = Scope(self.project.resolve(), name, self.home, self.home / name)
        self.installed = 0

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ANIMUS, *args], cwd=self.project, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def grow_to(self, n: int) -> None:
        """Install plugins until ``n`` are installed."""
        while self.installed < n:
            name = f"slow{self.installed:02d}"
            folder = self.base / "src" / name
            folder.mkdir(parents=True)
            (folder / "plugin.py").write_text(PLUGIN_PY)
            (folder / "run.sh").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{{0}}/plugin.py" "$@"\n'
                                           .replace("{0}", str(folder)))
            (folder / "run.sh").chmod(0o755)
            (folder / "animus-plugin.yaml").write_text(yaml.safe_dump({
                "name": name, "role": "provider", "version": "0.0.1", "command": [str(folder / "run.sh")]}))
            install(self.scope, str(folder))
            self.installed += 1

    def timed_health(self) -> tuple[float, float, dict[str, Any]]:
        """(wall seconds, CPU seconds of the command and every process it reaped, report)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = self.cli("daemon", "health", "--json")
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        report = json.loads(out.stdout) if out.stdout.strip() else {"plugins": [], "error": out.stderr}
        return wall, cpu, report

    def timed_baseline(self, n: int) -> tuple[float, float]:
        """(wall, CPU) of ``n`` interpreters importing the plugin's modules, all started at once."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", "import animus.testing_worker"], env=self.env)
                 for _ in range(n)]
        for proc in procs:
            proc.wait()
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    def control(self) -> ControlClient:
        return ControlClient(self.scope.endpoint("control"), timeout=30)

    def start(self, n: int) -> None:
        out = self.cli("daemon", "start", "--skip-preflight", "--json")
        if out.returncode != 0:
            raise SystemExit(f"daemon start failed: {out.stderr.strip()}")
        client = self.control()
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                tree = client.call("daemon/status", {})["tree"]
                running = [c for sup in tree for c in sup.get("children", []) if c.get("state") == "running"
                           and c["name"].startswith("slow")]
                if len(running) == n:
                    return
                time.sleep(0.1)
        finally:
            client.close()
        raise SystemExit(f"only {len(running)} of {n} plugins came up within 120 s")

    def stop(self) -> None:
        self.cli("daemon", "stop", "--shutdown-timeout-secs", "30")


def unhealthy(report: dict[str, Any]) -> list[str]:
    return [f"{r['plugin']}: {r.get('last_error')}" for r in report.get("plugins", [])
            if r.get("status") != "healthy"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per size and mode (median kept)")
    parser.add_argument("--sizes", default="1,8,32")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="animus-bench-health-"))
    bench = Bench(tmp)
    rows: dict[int, dict[str, float]] = {}
    problems: list[str] = []
    try:
        for n in sizes:
            bench.grow_to(n)
            down, bare = [], []
            for _ in range(args.runs):  # interleaved, so that machine load hits both alike
                bare.append(bench.timed_baseline(n))
                down.append(bench.timed_health())
            for _, _, report in down:
                problems += [f"down/{n}: {x}" for x in unhealthy(report)]
            bench.start(n)
            try:
                bench.timed_health()  # warm-up: the first call pays the daemon's lazy imports
                up = [bench.timed_health() for _ in range(args.runs * 3)]  # cheap, and noisier
                for _, _, report in up:
                    problems += [f"up/{n}: {x}" for x in unhealthy(report)]
                client = bench.control()
                calls = []
                for _ in range(args.runs * 3):
                    t0 = time.perf_counter()
                    client.call("daemon/health", {"timeout": 3})
                    calls.append(time.perf_counter() - t0)
                client.close()
            finally:
                bench.stop()
            rows[n] = {
                "down_wall": statistics.median(w for w, _, _ in down),
                "down_cpu": statistics.median(c for _, c, _ in down),
                "base_wall": statistics.median(w for w, _ in bare),
                "base_cpu": statistics.median(c for _, c in bare),
                "up_wall": statistics.median(w for w, _, _ in up),
                "up_call": statistics.median(calls),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()[0]
    print(f"daemon health fan-out: median of {args.runs} runs (daemon down) and {args.runs * 3} (up), {cores} cores, "
          f"health/check {HEALTH_DELAY * 1000:.0f} ms per plugin, load average {load:.1f} at the end"
          + (" (a busy machine: the CPU-bound daemon-down figure is pessimistic)" if load > cores else ""))
    print(f"{'plugins':>8} {'up: command':>12} {'up: control call':>17} {'down: command':>14} "
          f"{'down: child CPU':>16} {'CPU/cores':>10}")
    for n, r in rows.items():
        print(f"{n:>8} {r['up_wall'] * 1000:>10.0f}ms {r['up_call'] * 1000:>15.1f}ms "
              f"{r['down_wall'] * 1000:>12.0f}ms {r['down_cpu'] * 1000:>14.0f}ms "
              f"{r['down_cpu'] / cores * 1000:>8.0f}ms")
    lo, hi = min(rows), max(rows)
    up_ratio = rows[hi]["up_wall"] / rows[lo]["up_wall"]
    call_ratio = rows[hi]["up_call"] / rows[lo]["up_call"]
    down_ratio = rows[hi]["down_wall"] / rows[lo]["down_wall"]
    bound = 1.2 * rows[hi]["down_cpu"] / cores
    print(f"daemon up, ratio {hi}:{lo}: command {up_ratio:.2f} (target <= 1.5: "
          f"{'met' if up_ratio <= 1.5 else 'NOT met'}); control call alone {call_ratio:.2f}")
    print(f"daemon down, ratio {hi}:{lo}: {down_ratio:.2f}; with {hi} plugins wall "
          f"{rows[hi]['down_wall']:.2f} s vs child CPU {rows[hi]['down_cpu']:.2f} s / {cores} cores = "
          f"{rows[hi]['down_cpu'] / cores:.2f} s, so wall = {rows[hi]['down_wall'] / (rows[hi]['down_cpu'] / cores):.2f}"
          f" x CPU/cores (target <= 1.2: {'met' if rows[hi]['down_wall'] <= bound else 'NOT met'})")
    base = rows[hi]["base_wall"] / (rows[hi]["base_cpu"] / cores)
    ours = rows[hi]["down_wall"] / (rows[hi]["down_cpu"] / cores)
    print(f"baseline, {hi} bare interpreters started at once: wall {rows[hi]['base_wall']:.2f} s, CPU "
          f"{rows[hi]['base_cpu']:.2f} s, so wall = {base:.2f} x CPU/cores on this machine now; "
          f"daemon health down is {ours / base:.2f} x that")
    if problems:
        print(f"unhealthy rows seen ({len(problems)}), first: {problems[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
