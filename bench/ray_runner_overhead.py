"""Benchmark: what a run costs on the Ray backend against the local backend.

Three daemons in the same run, on three copies of one project: the local
backend; Ray with the run on the daemon's own node (a loopback-pinned Ray
head started here, ``LoopbackCluster``); and Ray with the run placed, by a
custom resource only that node has, on a second node (``NamespaceCluster``:
the daemon and a Ray head in one network namespace, a worker node in
another, joined by a veth pair; needs root, else that row says why it is
missing). Runs alternate between the daemons (so machine load hits all
alike), one at a time, each a one-phase command workflow (``true``). A run's
time is from its ``workflow_queued`` event to its ``workflow_completed``
event in the daemon's event log. A Ray daemon's first run also creates the
node's mirror of the repository and is reported on its own.

Where the Ray backend's time goes: scheduling the Ray task, ``git fetch`` and
``git worktree add`` for the run's own worktree, the runner's interpreter
start-up (as for a local run), and a control-socket round trip for each
store call (a local runner writes SQLite directly).

    .venv/bin/python bench/ray_runner_overhead.py [--runs 10]
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
from datetime import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ANIMUS = [sys.executable, "-m", "animus.cli.main"]
WORKFLOWS = """
phases:
  one: {mode: command, idempotency: idempotent, command: {program: "true"}}
workflows:
  - id: bench
    phases: [one]
default_workflow_ref: bench
"""


class Daemon:
    def __init__(self, tmp: Path, name: str, runners: dict[str, Any], prefix: list[str] | None = None) -> None:
        self.project = tmp / name
        self.project.mkdir()
        git = ["git", "-C", str(self.project), "-c", "user.name=b", "-c", "user.email=b@example.com"]
        subprocess.run(["git", "init", "-q", str(self.project)], check=True)
        (self.project / "README.md").write_text("bench\n")
        subprocess.run([*git, "add", "README.md"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
        (self.project / ".animus").mkdir()
        (self.project / ".animus" / "workflows.yaml").write_text(WORKFLOWS)
        config = {"pool_size": 1, "interval_secs": 0.5, "runners": runners}
        (self.project / ".animus" / "config.yaml").write_text(json.dumps(config))
        self.home = tmp / f"{name}-home"
        self.nodes: set[str] = set()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")} | {"ANIMUS_HOME": str(self.home)}
        out = self.cli("daemon", "start", "--skip-preflight", "--json", prefix=prefix or [])
        self.state_root = Path(json.loads(out.strip().splitlines()[-1])["state_root"])
        from animus.bus.rpc import ControlClient
        from animus.state.scope import Scope, scope_name

        scope = Scope(self.project.resolve(), scope_name(self.project), self.home, self.state_root)
        self.client = ControlClient(scope.endpoint("control"), timeout=30)

    def cli(self, *args: str, prefix: Sequence[str] = ()) -> str:
        proc = subprocess.run([*prefix, *ANIMUS, *args], cwd=self.project, env=self.env, capture_output=True, text=True,
                              timeout=180, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"animus {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def wait_connected(self) -> None:
        deadline = time.monotonic() + 120
        while not self.client.call("daemon/status")["runners"].get("connected"):
            if time.monotonic() > deadline:
                raise SystemExit("the Ray daemon did not connect to the cluster")
            time.sleep(0.1)

    def one_run(self) -> float:
        wf = self.client.call("workflow/run", {"title": "bench"})["workflow_id"]
        while True:
            got = self.client.call("workflow/get", {"id": wf})
            if got["status"] in ("completed", "failed", "blocked", "cancelled"):
                break
            time.sleep(0.005)
        if got["status"] != "completed":
            raise SystemExit(f"{wf} ended {got['status']}")
        self.nodes.add(str(got.get("node") or "local").split("/")[0])  # where it ran
        return self._span(wf)

    def _span(self, wf: str) -> float:
        stamps: dict[str, float] = {}
        log = self.state_root / "logs" / "events.jsonl"
        deadline = time.monotonic() + 10
        while len(stamps) < 2 and time.monotonic() < deadline:
            for line in log.read_text().splitlines():
                event = json.loads(line)
                if event.get("workflow_id") == wf and event["kind"] in ("workflow_queued", "workflow_completed"):
                    stamps[event["kind"]] = datetime.fromisoformat(event["ts"]).timestamp()
            time.sleep(0.01)
        return (stamps["workflow_completed"] - stamps["workflow_queued"]) * 1000

    def stop(self) -> None:
        self.client.close()
        subprocess.run([*ANIMUS, "daemon", "stop", "--shutdown-timeout-secs", "30"], cwd=self.project, env=self.env,
                       capture_output=True, timeout=120, check=False)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 1), "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
            "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1)}


def second_node() -> tuple[Any, str | None]:
    """A head and a worker node in network namespaces (see the module doc), or why not."""
    from animus.workflow.remote.ray_netns import NamespaceCluster, netns_problem

    problem = netns_problem()
    if problem:
        return None, problem
    cluster = NamespaceCluster(head_cpus=1, node_cpus=1, node_resources={"far": 1})
    try:
        cluster.start()
        bad = cluster.exposure()
    except BaseException:
        cluster.stop()
        raise
    if bad:
        cluster.stop()
        raise SystemExit(f"Ray reaches beyond the namespaces' test addresses: {bad}")
    return cluster, None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from animus.workflow.remote.ray_cluster import LoopbackCluster, non_loopback_sockets
    from animus.workflow.remote.ray_netns import HEAD_IP, NODE_IP

    problem = LoopbackCluster.pinning_problem()
    if problem:
        raise SystemExit(f"not starting Ray: {problem}")
    tmp = Path(tempfile.mkdtemp(prefix="animus-bench-ray-"))
    cluster = LoopbackCluster(num_cpus=2)
    daemons: list[Daemon] = []
    far_cluster: Any = None
    try:
        t0 = time.perf_counter()
        cluster.start_head()
        cluster.wait_nodes(1)
        head_s = time.perf_counter() - t0
        bad = non_loopback_sockets(cluster.pids())
        if bad:
            raise SystemExit(f"Ray is not pinned to loopback: {bad}")
        far_cluster, far_problem = second_node()
        local = Daemon(tmp, "local", {"backend": "local"})
        daemons.append(local)
        remote = Daemon(tmp, "ray", {"backend": "ray", "ray": {
            "address": cluster.address, "daemon_address": "127.0.0.1", "work_dir": str(tmp / "node-work")}})
        daemons.append(remote)
        far: Daemon | None = None
        if far_cluster is not None:

            far = Daemon(tmp, "far", {"backend": "ray", "ray": {
                "address": far_cluster.address, "daemon_address": HEAD_IP, "allow_non_loopback": True,
                "resources": {"far": 1}, "work_dir": "~/ray-work"}},  # ~: each node's HOME, a disk of its own
                prefix=far_cluster.exec_argv(far_cluster.head_ns, []))
            daemons.append(far)
            far.wait_connected()
        remote.wait_connected()
        first_ray = remote.one_run()  # creates the node's mirror of the repository
        first_far = far.one_run() if far else None
        local.one_run()  # and the local daemon's first run, for symmetry
        local_ms: list[float] = []
        ray_ms: list[float] = []
        far_ms: list[float] = []
        for _ in range(args.runs):
            local_ms.append(local.one_run())
            ray_ms.append(remote.one_run())
            if far:
                far_ms.append(far.one_run())
        if far and far.nodes != {NODE_IP}:
            raise SystemExit(f"the second node's runs ran on {sorted(far.nodes)}, not on {NODE_IP}")
    finally:
        for daemon in daemons:
            daemon.stop()
        cluster.stop()
        if far_cluster is not None:
            far_cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    local_s, ray_s = summary(local_ms), summary(ray_ms)
    out: dict[str, Any] = {
        "runs_per_backend": args.runs,
        "ray_head_start_s": round(head_s, 1),
        "local": local_s,
        "ray_same_node": ray_s,
        "ray_second_node": summary(far_ms) if far_ms else {"missing": far_problem},
        "ray_first_run_ms": round(first_ray, 1),
        "ray_overhead_per_run_ms": round(ray_s["median_ms"] - local_s["median_ms"], 1),
        "ratio_ray_to_local": round(ray_s["median_ms"] / local_s["median_ms"], 2),
    }
    if far_ms and first_far is not None:
        far_s = summary(far_ms)
        out["ray_second_node_first_run_ms"] = round(first_far, 1)
        out["ratio_second_node_to_local"] = round(far_s["median_ms"] / local_s["median_ms"], 2)
        out["ratio_second_node_to_same_node"] = round(far_s["median_ms"] / ray_s["median_ms"], 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
