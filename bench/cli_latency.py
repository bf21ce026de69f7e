"""CLI latency: ``animus daemon status --json`` against a running daemon.

Median wall time of the real command (the installed ``animus`` script, a new
process each time, as scripts and health checks run it), beside ``python -c
pass`` measured in the same run, interleaved so both see the same load.
Target: median <= 150 ms. It also checks that the fast path (no typer) and
the full typer app print the same answer.

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

from _daemon import running_daemon

TARGET_MS = 150.0
TYPER_PATH = ("import sys; sys.argv = ['animus', 'daemon', 'status', '--json']; "
              "from animus.cli.main import _app; _app()(prog_name='animus')")


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("animus")
    return [str(script)] if script.exists() else [sys.executable, "-m", "animus.cli.main"]


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    return (time.perf_counter() - start) * 1000, proc


def _stable(stdout: str) -> dict[str, object]:
    out = json.loads(stdout)
    out.pop("uptime_seconds", None)
    return out  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    a = ap.parse_args()
    status = [*_cli(), "daemon", "status", "--json"]
    print(f"cli latency: {Path(status[0]).name} daemon status --json, "
          f"{a.runs} runs; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with running_daemon() as d:
        _, fast = _timed(status, d.env, d.project)
        _, full = _timed([sys.executable, "-c", TYPER_PATH], d.env, d.project)
        if fast.returncode != 0 or full.returncode != 0:
            print(f"status failed: {fast.stderr or full.stderr}")
            return 1
        same = _stable(fast.stdout) == _stable(full.stdout)
        print(f"  fast path and typer app print the same answer: {'yes' if same else 'NO'}")
        cli_ms: list[float] = []
        typer_ms: list[float] = []
        pass_ms: list[float] = []
        for _ in range(a.runs):
            cli_ms.append(_timed(status, d.env, d.project)[0])
            pass_ms.append(_timed([sys.executable, "-c", "pass"], d.env, d.project)[0])
        for _ in range(max(3, a.runs // 4)):
            typer_ms.append(_timed([sys.executable, "-c", TYPER_PATH], d.env, d.project)[0])
    med, base = statistics.median(cli_ms), statistics.median(pass_ms)
    print(f"  python -c pass:                  median {base:6.1f} ms  (min {min(pass_ms):.1f})")
    print(f"  animus daemon status --json:     median {med:6.1f} ms  (min {min(cli_ms):.1f}, "
          f"{med / base:.1f}x python -c pass, +{med - base:.1f} ms)")
    print(f"  same through the full typer app: median {statistics.median(typer_ms):6.1f} ms  "
          f"(for comparison)")
    ok = med <= TARGET_MS
    print(f"target median <= {TARGET_MS:.0f} ms: {'ok' if ok else 'MISSED'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
