"""Workflow runners on two real Ray nodes, one of them lost mid-run (marker ``ray_multinode``).

One cluster for the module (``NamespaceCluster``): the Ray head and the daemon
in one network namespace (198.18.0.2), a worker node in another (198.18.0.3),
joined by a veth pair and nothing else; each node has a HOME, so a disk, of
its own. Why namespaces and not 127.0.0.2/127.0.0.3: Ray then listens on every
interface of the machine (see ``animus.workflow.remote.ray_netns``). Before
any workflow runs, psutil inside each namespace must show every interface
address and every socket on loopback or the two test addresses.

Needs root (``ip netns add``): skips, saying so, without it; fails under CI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import ANIMUS, FAST_RESTART, Env
from test_ray_runners import get, run

from animus.bus.curve import ClientKeys
from animus.testing import wait_until
from animus.workflow.remote.netns_sockets import exposure
from animus.workflow.remote.ray_netns import HEAD_IP, NODE_IP, NamespaceCluster, netns_problem, ns_pids
from animus.workflow.remote.ray_spec import worktree_choice
from animus.workflow.remote.ray_task import prepare_worktree
from animus.workflow.store import IDEMPOTENCY_BLOCK

HAVE_RAY = importlib.util.find_spec("ray") is not None

pytestmark = pytest.mark.ray_multinode


def test_exposure_names_what_reaches_beyond_the_test_link() -> None:
    def conn(laddr: str, raddr: str = "", status: str = "LISTEN") -> dict[str, Any]:
        return {"pid": 7, "name": "raylet", "status": status, "laddr": laddr, "lport": 6379, "raddr": raddr,
                "rport": 0}

    ok = {"addrs": [["lo", "127.0.0.1"], ["lo", "::1"], ["animus0", HEAD_IP]],
          "conns": [conn("::"), conn("0.0.0.0"), conn(f"::ffff:{HEAD_IP}"), conn("127.0.0.1"),
                    conn(HEAD_IP, NODE_IP, "ESTABLISHED")]}
    assert exposure(ok, {HEAD_IP, NODE_IP}) == []
    leaky = {"addrs": [*ok["addrs"], ["eth0", "10.1.2.3"]],
             "conns": [conn("10.1.2.3"), conn(HEAD_IP, "93.184.216.34", "SYN_SENT")]}
    bad = exposure(leaky, {HEAD_IP, NODE_IP})
    assert bad[0] == "interface eth0 has 10.1.2.3" and len(bad) == 3 and "93.184.216.34" in bad[2]


def test_a_node_carries_on_in_a_worktree_only_after_its_own_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "-c", "init.defaultBranch=main", "init", "-q", str(repo)], check=True)

    def commit(text: str) -> None:
        (repo / "README.md").write_text(text)
        subprocess.run([*git, "add", "README.md"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", text], check=True)

    commit("v1")
    node = tmp_path / "node-work"
    path, created = prepare_worktree(node, str(repo), "main", "wf-1")
    assert created and (path / "README.md").read_text() == "v1"
    (path / "left-by-attempt").write_text("uncommitted")
    assert worktree_choice("198.18.0.3/1de9beb1", "198.18.0.3/1de9beb1") == "reuse"
    again, created = prepare_worktree(node, str(repo), "main", "wf-1")  # the previous run was here
    assert again == path and not created and (path / "left-by-attempt").exists()
    commit("v2")  # the workflow went on elsewhere meanwhile, and pushed
    assert worktree_choice("198.18.0.2/c87dcda3", "198.18.0.3/1de9beb1") == "fresh"
    again, created = prepare_worktree(node, str(repo), "main", "wf-1", fresh=True)
    assert again == path and created and not (path / "left-by-attempt").exists()
    assert (path / "README.md").read_text() == "v2"


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[NamespaceCluster]:
    if not HAVE_RAY:
        pytest.skip("Ray is not installed: pip install -e '.[test,ray]'")
    problem = netns_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"ray_multinode tests need network namespaces: {problem}")
        pytest.skip(f"ray_multinode tests need network namespaces: {problem}")
    cluster = NamespaceCluster(head_cpus=1, node_cpus=2, node_resources={"far": 2})
    try:
        cluster.start()
        bad = cluster.exposure()
        assert not bad, f"beyond the test addresses: {bad}"
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def nodes(env: Env, two_nodes: NamespaceCluster, tmp_path: Path) -> tuple[Env, NamespaceCluster, Path]:
    # supervisors exec'd, not forked: a test reads the runners' keys from the workflows supervisor's
    # /proc/<pid>/environ, which for a forked process shows the environment its zygote was exec'd with
    env.env["ANIMUS_ZYGOTE"] = "0"
    return env, two_nodes, tmp_path


def ensure_worker(cluster: NamespaceCluster) -> dict[str, str]:
    """The alive nodes by ip, (re)starting the worker node if an earlier test killed it."""
    alive = {n["ip"]: n["node_id"] for n in cluster.nodes() if n["alive"]}
    if NODE_IP not in alive:
        cluster.start_node()
        alive = {n["ip"]: n["node_id"] for n in cluster.wait_nodes(2) if n["alive"]}
    return alive


GATE = """#!/bin/sh
# $1: the phase's name, $2: the flag that lets it finish. Notes where it runs and whether the
# checkout holds what an earlier attempt left (untracked) in it.
state=fresh; test -e .left-by-attempt && state=stale
echo "$1 $PWD $state" >> {marks}
touch .left-by-attempt
while ! test -f "$2"; do sleep 0.05; done
"""


def workflows(gate: Path, tmp: Path) -> str:
    def phase(name: str, idem: str) -> str:
        return (f"  {name}: {{mode: command, idempotency: {idem}, "
                f"command: {{program: sh, args: [{gate}, {name}, {tmp / (name + '.flag')}]}}}}\n")

    return ("phases:\n" + phase("far", "idempotent") + phase("hold", "idempotent") + phase("safe", "idempotent")
            + phase("risky", "sideeffecting")
            + f"  prep: {{mode: command, idempotency: idempotent, command: {{program: sh, args: [-c, "
              f"'echo prep $PWD >> {tmp / 'marks'}']}}}}\n"
            + "  check: {mode: command, idempotency: idempotent, command: {program: sh, args: [-c, "
              "'cat README.md; echo checked']}}\n"
            + "workflows:\n" + "".join(f"  - id: {wid}\n    phases: [{', '.join(ps)}]\n" for wid, ps in (
                ("far", ["far", "check"]), ("hold", ["hold", "check"]), ("safe", ["prep", "safe", "check"]),
                ("risky", ["risky", "check"]))))


def boot(env: Env, cluster: NamespaceCluster, tmp: Path, **ray: Any) -> dict[str, Any]:
    """A daemon in the head's namespace, its runners' endpoints on the head's test address."""
    git = ["git", "-C", str(env.project), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (env.project / "README.md").write_text("the task's code\n")
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    gate = tmp / "gate.sh"
    gate.write_text(GATE.format(marks=tmp / "marks"))
    env.write_config({"restart": FAST_RESTART, "pool_size": 3, "interval_secs": 0.2,
                      "runners": {"backend": "ray", "ray": {
                          "address": cluster.address, "daemon_address": HEAD_IP, "allow_non_loopback": True,
                          "work_dir": "~/ray-work", "heartbeat_secs": 0.5, "heartbeat_timeout_secs": 3, **ray}}})
    env.write_workflows(workflows(gate, tmp))
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    env.install_probe("probe-provider")
    out = subprocess.run(cluster.exec_argv(cluster.head_ns, [*ANIMUS, "daemon", "start", "--json"]),
                         cwd=env.project, env=env.env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    env.started.append(json.loads(out.stdout.strip().splitlines()[-1])["pid"])
    runners = wait_until(lambda: (r := env.status()["runners"])["connected"] and r, timeout=90,
                         what="the daemon to connect to Ray")
    bad = cluster.exposure()  # the daemon, a Ray driver now, included; before any workflow runs
    assert not bad, f"beyond the test addresses: {bad}"
    return dict(runners)


def wait_status(env: Env, wf: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    return wait_until(lambda: (w := get(env, wf))["status"] in statuses and w, timeout=timeout,
                      what=f"workflow {wf} to reach {statuses}")


def marks(tmp: Path, name: str) -> list[list[str]]:
    path = tmp / "marks"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[1:] for line in lines if line.split()[0] == name]


def placed(env: Env, wf: str) -> str | None:
    """The node ``daemon status`` shows the run on (None until it started)."""
    for sup in env.call("daemon/status")["tree"]:
        for child in sup.get("children", []):
            if child["name"] == wf and child.get("node"):
                return str(child["node"])
    return None


def runs_by_node(env: Env) -> dict[str, tuple[bool, list[str]]]:
    return {n["ip"]: (n["alive"], n["runs"]) for n in env.status()["runners"]["nodes"]}


def from_node(cluster: NamespaceCluster, code: str, env: dict[str, str], *args: str) -> str:
    """Run Python as a process on the worker node's machine would (in its namespace)."""
    out = subprocess.run(cluster.exec_argv(cluster.node_ns, [sys.executable, "-c", code, *args]), env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


ASK = """import sys
from animus.bus.curve import ClientKeys
from animus.bus.rpc import ControlClient
from animus.errors import AnimusError
client = ControlClient(sys.argv[1], timeout=float(sys.argv[2]), curve=ClientKeys.from_env())
try:
    print(client.call("workflow/runner", {"op": "heartbeat", "wf_id": "wf-x", "run": "wf-x.1"}))
except AnimusError as exc:
    print(type(exc).__name__, exc)
"""

# a publisher on the bus input: the broker's subscription reaches it only once the CURVE handshake passed
PUBLISH = """import sys
import zmq
from animus.bus.curve import ClientKeys, secure_client
sock = zmq.Context.instance().socket(zmq.XPUB)
sock.setsockopt(zmq.LINGER, 0)
keys = ClientKeys.from_env()
if keys is not None:
    secure_client(sock, sys.argv[1], keys)
sock.connect(sys.argv[1])
print("subscribed" if sock.poll(int(sys.argv[2])) else "no handshake")
"""


def refused(env: Env, domain: str) -> float:
    """Handshakes the daemon refused on ``domain`` (its metrics)."""
    counters = env.call("daemon/metrics")["counters"]
    return sum(v for k, v in counters.items() if k.startswith(f"tcp_handshakes_refused_total{{domain={domain},"))


@pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: pip install -e '.[test,ray]'")
def test_runs_placed_by_resources_on_the_worker_node(nodes: tuple[Env, NamespaceCluster, Path]) -> None:
    env, cluster, tmp = nodes
    ids = ensure_worker(cluster)
    runners = boot(env, cluster, tmp, num_cpus_per_run=1, resources={"far": 1})
    control = runners["control_endpoint"]
    assert control.startswith(f"tcp://{HEAD_IP}:") and runners["bus_endpoint"].startswith(f"tcp://{HEAD_IP}:")
    assert {n["ip"] for n in runners["nodes"] if n["alive"]} == {HEAD_IP, NODE_IP}
    # from the worker node's machine, both tcp endpoints: no handshake without the runners' CURVE key
    # (none, or another key: refused and counted); with it, the bus input subscribes, and the control
    # socket wants the token too
    workflows_pid = next(s for s in env.status()["tree"] if s["name"] == "workflows")["pid"]
    keys = ClientKeys.from_env(psutil.Process(workflows_pid).environ())
    assert keys is not None
    bare = {k: v for k, v in env.env.items() if not k.startswith("ANIMUS_CURVE")}
    stranger = bare | ClientKeys.new(keys.server).to_env()
    assert from_node(cluster, ASK, bare, control, "1.5").startswith("Unavailable")
    assert from_node(cluster, ASK, stranger, control, "1.5").startswith("Unavailable")
    assert from_node(cluster, PUBLISH, bare, runners["bus_endpoint"], "1500") == "no handshake"
    wait_until(lambda: refused(env, "animus-control") >= 1 and refused(env, "animus-bus") >= 1, timeout=10,
               what="the daemon to count the refused handshakes on both endpoints")
    assert "token" in from_node(cluster, ASK, bare | keys.to_env(), control, "10")
    assert from_node(cluster, PUBLISH, bare | keys.to_env(), runners["bus_endpoint"], "10000") == "subscribed"

    wf = run(env, "far away", "far")
    wait_until(lambda: marks(tmp, "far"), timeout=90, what="the phase to start on a node")
    stream = subprocess.Popen([*ANIMUS, "daemon", "stream", "--workflow", wf, "--pretty"], cwd=env.project,
                              env=env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert stream.stderr is not None and "streaming events" in stream.stderr.readline()
        label = wait_until(lambda: placed(env, wf), timeout=10, what="the run in daemon status")
        assert label == f"{NODE_IP}/{ids[NODE_IP][:8]}"  # the only node with the "far" resource
        assert runs_by_node(env) == {HEAD_IP: (True, []), NODE_IP: (True, [wf])}
        text = env.run("daemon", "status", check=True).stdout
        assert f"runners: ray at {cluster.address} (connected), 2 node(s)" in text
        assert f"node {HEAD_IP}/{ids[HEAD_IP][:8]} alive  runs: -" in text
        assert f"node {label} alive  runs: {wf}" in text and f"node={label}" in text
        where, state = marks(tmp, "far")[0]
        assert Path(where) == cluster.home(cluster.node_ns) / "ray-work" / Path(env.status()["state_root"]).name \
            / "worktrees" / wf and state == "fresh"
        (tmp / "far.flag").write_text("go")
        lines, _ = stream.communicate(timeout=90)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.communicate()
    assert f"check started (attempt 1, command) on node {label}" in lines  # after the stream began
    assert "workflow_completed" in lines
    done = wait_status(env, wf, "completed")
    assert "the task's code" in done["phases"][1]["attempt_list"][0]["output_tail"]


def runner_processes(cluster: NamespaceCluster) -> list[str]:
    found = []
    for ns in (cluster.head_ns, cluster.node_ns):
        for pid in ns_pids(ns):
            try:
                cmd = psutil.Process(pid).cmdline()
            except psutil.Error:
                continue
            if "animus.workflow.runner" in cmd:
                found.append(f"{ns}: pid {pid} {' '.join(cmd)}")
    return found


def events(env: Env, kind: str, wf: str) -> list[dict[str, Any]]:
    log = Path(env.status()["state_root"]) / "logs" / "events.jsonl"
    return [e for line in log.read_text().splitlines() if (e := json.loads(line))["kind"] == kind
            and e.get("workflow_id") == wf]


@pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: pip install -e '.[test,ray]'")
def test_worker_node_lost_mid_run(nodes: tuple[Env, NamespaceCluster, Path]) -> None:
    env, cluster, tmp = nodes
    ids = ensure_worker(cluster)
    head, worker = f"{HEAD_IP}/{ids[HEAD_IP][:8]}", f"{NODE_IP}/{ids[NODE_IP][:8]}"
    head_work = cluster.home(cluster.head_ns) / "ray-work"
    node_work = cluster.home(cluster.node_ns) / "ray-work"
    boot(env, cluster, tmp, num_cpus_per_run=1)  # no custom resource: any node with a free CPU
    # the head's one CPU goes to a first run (Ray prefers the driver's node while it has room) ...
    holder = run(env, "holds the head", "hold")
    assert wait_until(lambda: placed(env, holder), timeout=90, what="the first run to start") == head
    # ... so the next two are placed on the worker node, by num_cpus_per_run
    safe, risky = run(env, "safe", "safe"), run(env, "risky", "risky")
    wait_until(lambda: marks(tmp, "safe") and marks(tmp, "risky"), timeout=90, what="both phases to start")
    assert placed(env, safe) == placed(env, risky) == worker
    assert runs_by_node(env) == {HEAD_IP: (True, [holder]), NODE_IP: (True, sorted([safe, risky]))}
    assert all(Path(where).is_relative_to(node_work) for where, _ in marks(tmp, "safe") + marks(tmp, "risky"))

    # the machine dies: its link first (no reset reaches the head), then the raylet, agents, Ray workers,
    # runners and their commands
    killed = cluster.kill_node()
    assert killed and not ns_pids(cluster.node_ns)
    blocked = wait_status(env, risky, "blocked", timeout=30)  # noticed: missed heartbeats or Ray's node death
    assert blocked["blocked_reason"] == IDEMPOTENCY_BLOCK
    crashed = blocked["phases"][0]["attempt_list"]
    assert [a["status"] for a in crashed] == ["crashed"] and worker in crashed[0]["error"]
    lost = wait_until(lambda: get(env, safe)["phases"][1]["attempt_list"][0]["status"] == "crashed"
                      and get(env, safe), timeout=30, what="the safe run to be lost")
    assert worker in lost["phases"][1]["attempt_list"][0]["error"]
    assert {e["data"]["node"] for e in events(env, "runner_lost", safe) + events(env, "runner_lost", risky)} == {worker}

    (tmp / "hold.flag").write_text("go")  # the head frees up: the safe run's retry is placed there
    wait_status(env, holder, "completed")
    wait_until(lambda: len(marks(tmp, "safe")) == 2, timeout=90, what="the idempotent phase's retry to start")
    where, state = marks(tmp, "safe")[1]
    assert Path(where) == head_work / Path(env.status()["state_root"]).name / "worktrees" / safe
    assert state == "fresh"  # a checkout of its own on the head: what the dead node had is gone with it
    assert placed(env, safe) == head
    made = [e["data"] for e in events(env, "worktree_created", safe)]
    assert [(d["node"], d["previous_node"], d["path"]) for d in made] == [
        (worker, None, marks(tmp, "safe")[0][0]), (head, worker, where)]
    assert f"the previous run was on node {worker}" in made[1]["message"]
    (tmp / "safe.flag").write_text("go")
    done = wait_status(env, safe, "completed")
    assert [[a["status"] for a in p["attempt_list"]] for p in done["phases"]] == [
        ["completed"], ["crashed", "completed"], ["completed"]]  # from its checkpoint: prep did not run again
    assert len(marks(tmp, "prep")) == 1

    # the side-effecting phase did not run again on its own ...
    assert get(env, risky)["status"] == "blocked" and len(marks(tmp, "risky")) == 1
    (tmp / "risky.flag").write_text("go")
    env.run("workflow", "resume", risky, "--force", check=True)  # ... only on the operator's word
    forced = wait_status(env, risky, "completed")
    assert [a["status"] for a in forced["phases"][0]["attempt_list"]] == ["crashed", "completed"]
    assert Path(marks(tmp, "risky")[1][0]).is_relative_to(head_work)

    wait_until(lambda: not runner_processes(cluster), timeout=30, what="no runner process left on either node")
    # a run stays listed until its Ray task has returned, a moment after its workflow completed
    wait_until(lambda: runs_by_node(env) == {HEAD_IP: (True, []), NODE_IP: (False, [])}, timeout=60,
               what="daemon status to show no runs, and the worker node dead")
