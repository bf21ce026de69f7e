"""MCP latency: one tool call round trip against the same operation by the other ways in.

The operation is ``subject get`` of one task: client → ``animus mcp serve``
(stdio, the MCP SDK's own client, one session) → control socket → daemon →
the default subject plugin → SQLite → back. Measured in one run, against one
daemon, interleaved so every path sees the same load:

- ``control``: the control call the CLI makes (``ControlClient.call``,
  ``subject/call``), in-process: the CLI's path without starting a process;
  the floor every other path stands on;
- ``mcp``: ``tools/call subject_get`` on a live session;
- ``http``: ``GET /api/subjects/task/<id>`` on transport-http, a kept-alive
  client with the token;
- ``cli``: ``animus subject get --json``, a new process each time (what an
  agent without MCP would run), and ``animus daemon status --json`` (the
  CLI's no-typer fast path, a different operation) beside ``mcp
  daemon_status`` for scale.

Target: the MCP round trip within 2x the control call (the SDK's JSON-RPC,
the argument check and the stdio hop may at most double the cost of the call
itself). Run: ``.venv/bin/python bench/mcp_latency.py [--calls N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _daemon import ANIMUS, BenchDaemon, running_daemon

from animus.bus.rpc import ControlClient
from animus.testing import wait_until

TARGET_RATIO = 2.0


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _transport_url(d: BenchDaemon) -> str:
    path = d.state_root / "transports" / "transport-http.json"
    record = wait_until(lambda: path.exists() and json.loads(path.read_text()), timeout=30,
                        what="transport-http to report its URL")
    return str(record["url"])


def _cli(d: BenchDaemon, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([*ANIMUS, *args, "--json"], cwd=d.project, env=d.env, capture_output=True, timeout=60,
                          check=False)
    elapsed = _ms(start)
    if proc.returncode != 0:
        raise SystemExit(f"animus {' '.join(args)} failed: {proc.stderr.decode()}")
    return elapsed


async def measure(d: BenchDaemon, task: str, calls: int, cli_runs: int) -> dict[str, list[float]]:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    control = ControlClient(d.endpoint("control"), timeout=20)
    http = httpx.Client(base_url=_transport_url(d), timeout=20, headers={
        "Authorization": f"Bearer {(d.state_root / 'token').read_text().strip()}"})
    params = StdioServerParameters(command=ANIMUS[0], args=[*ANIMUS[1:], "mcp", "serve"], env=d.env,
                                   cwd=str(d.project))
    times: dict[str, list[float]] = {k: [] for k in ("control", "mcp", "http", "cli", "mcp_status", "cli_status")}
    get = {"kind": "task", "verb": "get", "params": {"id": task}}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for i in range(calls + 5):  # the first five warm every path up and are not counted
            start = time.perf_counter()
            control.call("subject/call", get)
            control_ms = _ms(start)
            start = time.perf_counter()
            result = await session.call_tool("subject_get", {"id": task})
            mcp_ms = _ms(start)
            if result.is_error:
                raise SystemExit(f"subject_get failed: {result.content[0]}")
            start = time.perf_counter()
            http.get(f"/api/subjects/task/{task}").raise_for_status()
            http_ms = _ms(start)
            if i >= 5:
                times["control"].append(control_ms)
                times["mcp"].append(mcp_ms)
                times["http"].append(http_ms)
        for _ in range(cli_runs):
            times["cli"].append(_cli(d, "subject", "get", "--id", task))
            times["cli_status"].append(_cli(d, "daemon", "status"))
            start = time.perf_counter()
            await session.call_tool("daemon_status", {})
            times["mcp_status"].append(_ms(start))
    control.close()
    http.close()
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--cli-runs", type=int, default=7)
    a = ap.parse_args()
    print(f"mcp latency: subject get of one task, {a.calls} calls per path; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    with running_daemon(plugins=("default", "transport-http")) as d:
        made = d.run("subject", "create", "--title", "bench task", "--json")
        if made.returncode != 0:
            print(f"subject create failed: {made.stderr}")
            return 1
        task = json.loads(made.stdout.strip().splitlines()[-1])["subject"]["id"]
        times = asyncio.run(measure(d, task, a.calls, a.cli_runs))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["control"]
    rows = [("control call (the CLI's, in-process)", "control"), ("MCP tools/call subject_get", "mcp"),
            ("HTTP GET /api/subjects/task/<id>", "http"), ("animus subject get --json (process)", "cli")]
    for label, key in rows:
        print(f"  {label:<40} median {med[key]:7.2f} ms  p90 {_p90(times[key]):7.2f} ms  {med[key] / base:5.1f}x control")
    print(f"  for scale: MCP daemon_status median {med['mcp_status']:.2f} ms; animus daemon status --json "
          f"(the no-typer fast path, a process) median {med['cli_status']:.1f} ms")
    ratio = med["mcp"] / base
    print(f"target MCP round trip <= {TARGET_RATIO:g}x the control call: {ratio:.2f}x "
          f"({'ok' if ratio <= TARGET_RATIO else 'MISSED'})")
    return 0


def _p90(values: list[float]) -> float:
    ordered: list[Any] = sorted(values)
    return float(ordered[int(0.9 * (len(ordered) - 1))])


if __name__ == "__main__":
    sys.exit(main())
