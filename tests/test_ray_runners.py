"""Workflow runners on a Ray cluster (``runners.backend: ray``).

The unit tests need no processes. The integration tests share one real Ray
head per session, started by ``LoopbackCluster`` and pinned to 127.0.0.1:
before any workflow runs, psutil's connection list of every Ray process (and
of the daemon's tree once it is a Ray driver) must show loopback addresses
only, or the cluster is killed and the test fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import ANIMUS, FAST_RESTART, Env

from animus.bus.codec import pack, unpack
from animus.bus.rpc import ControlClient, serve_request
from animus.bus.curve import ClientKeys
from animus.errors import InvalidInput, Unavailable
from animus.testing import FakeClock, wait_until
from animus.workflow.remote.ray_config import RunnersConfigError, parse_runners
from animus.workflow.remote.runs import Alive, Lost, Overdue, RemoteRun, Unplaceable, liveness
from animus.workflow.remote.store import RemoteStore, serve_store_op
from animus.workflow.store import IDEMPOTENCY_BLOCK, WorkflowStore

HAVE_RAY = importlib.util.find_spec("ray") is not None  # not imported here: the tests drive Ray from processes

needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: pip install -e '.[test,ray]'")


# -- unit: config, liveness, remote store, token -------------------------------
def test_runners_config_is_checked() -> None:
    assert parse_runners(None) == {"backend": "local"}
    cfg = parse_runners({"backend": "ray", "ray": {"address": "10.0.0.5:6379", "resources": {"gpu_box": 1}}})
    assert cfg["ray"]["address"] == "10.0.0.5:6379" and cfg["ray"]["num_cpus_per_run"] == 1.0
    bad = [({"backend": "k8s"}, "runners.backend"), ({"backend": "ray", "ray": {"adress": "x"}}, "runners.ray.adress"),
           ({"backend": "ray", "ray": {"daemon_address": "example.com"}}, "runners.ray.daemon_address"),
           ({"backend": "ray", "ray": {"num_cpus_per_run": -1}}, "runners.ray.num_cpus_per_run"),
           ({"backend": "ray", "ray": {"heartbeat_secs": 5, "heartbeat_timeout_secs": 6}},
            "runners.ray.heartbeat_timeout_secs")]
    for raw, key in bad:
        with pytest.raises(RunnersConfigError) as err:
            parse_runners(raw)
        assert err.value.key == key


def test_liveness_decisions_with_a_fake_clock() -> None:
    clock = FakeClock()
    run = RemoteRun("wf-1", "wf-1.1", submitted=clock())
    decide = lambda: liveness(run, clock(), heartbeat_timeout=3, placement_timeout=60, stop_grace=10)
    assert isinstance(decide(), Alive)
    clock.advance(61)
    assert isinstance(decide(), Unplaceable)  # Ray placed it nowhere
    run.started = run.last_seen = clock()
    run.node = {"ip": "10.0.0.7", "node_id": "3f2a9c1e77"}
    clock.advance(2.9)
    assert isinstance(decide(), Alive)
    run.last_seen = clock()
    run.stop_requested = clock()
    clock.advance(2)
    assert isinstance(decide(), Alive)
    clock.advance(1.5)
    lost = decide()
    assert isinstance(lost, Lost) and "10.0.0.7/3f2a9c1e" in lost.reason and "no heartbeat" in lost.reason
    run.last_seen = clock.advance(8)
    assert isinstance(decide(), Overdue)  # asked to stop 11.5 s ago, grace 10 s


class _LoopbackClient:
    """Stands in for the tcp control socket: hands each call to the daemon-side code."""

    def __init__(self, store: WorkflowStore, state_root: Path) -> None:
        self.store, self.state_root, self.calls = store, state_root, []

    def call(self, method: str, params: dict[str, Any], timeout: float | None = None) -> Any:
        self.calls.append(params["op"])
        return unpack(pack(serve_store_op(self.store, self.state_root, unpack(pack(params)))))

    def close(self) -> None:
        pass


def test_remote_store_batches_a_step_into_one_transaction(tmp_path: Path) -> None:
    store = WorkflowStore(tmp_path / "workflow.db")
    wf = store.create("w", {"title": "t"})
    remote = RemoteStore("tcp://127.0.0.1:1", "token", wf["id"], f"{wf['id']}.1")
    client = _LoopbackClient(store, tmp_path)
    remote.client = client  # type: ignore[assignment]
    attempt, number = remote.begin_attempt(wf["id"], "build", 0, "idempotent", "command", None)
    assert number == 1
    with remote.tx() as c:
        remote.finish_attempt(attempt, c, "completed", verdict="advance", exit_code=0, usage={"input_tokens": 3})
        remote.update(wf["id"], c, phase_index=1, current_phase="test", rework={"build": 1})
        remote.checkpoint(c, wf["id"], "phase_completed", "build")
        assert client.calls == ["begin_attempt"]  # nothing sent inside the block
    assert client.calls == ["begin_attempt", "batch"]
    got = remote.get(wf["id"])
    assert (got["phase_index"], got["current_phase"], got["rework"]) == (1, "test", {"build": 1})
    assert store.attempts(wf["id"])[0]["usage"] == {"input_tokens": 3}  # in workflow.db, through the batch
    remote.record_session("build", {"session_id": "s-1"})
    assert json.loads((tmp_path / "runs" / wf["id"] / "build.session.json").read_text())["session_id"] == "s-1"
    with pytest.raises(InvalidInput):
        remote.get("wf-someone-else")
    # a batch that fails half-way changes nothing
    with pytest.raises(InvalidInput), remote.tx() as c:
        remote.update(wf["id"], c, phase_index=2)
        c.ops.append(["update", {"fields": {"cancel_requested": 1}}])  # not a runner's to write
    assert store.get(wf["id"])["phase_index"] == 1
    with pytest.raises(InvalidInput):
        serve_store_op(store, tmp_path, {"op": "batch", "wf_id": wf["id"],
                                         "ops": [["update", {"fields": {"id = 'x'; --": 1}}]]})
    store.close()


def test_tcp_control_requires_the_token() -> None:
    async def echo(params: dict[str, Any]) -> Any:
        return params

    def ask(request: dict[str, Any]) -> dict[str, Any]:
        raw = asyncio.run(serve_request(pack(request), {"workflow/store": echo}, lambda reason: None, "s3cret"))
        assert raw is not None
        return dict(unpack(raw))

    assert "refused" in ask({"id": 1, "method": "workflow/store", "params": {}})["error"]["message"]
    assert "refused" in ask({"id": 2, "method": "workflow/store", "params": {}, "token": "guess"})["error"]["message"]
    assert ask({"id": 3, "method": "workflow/store", "params": {"a": 1}, "token": "s3cret"})["result"] == {"a": 1}


def test_ray_backend_without_ray_fails_the_daemon_start(env: Env, tmp_path: Path) -> None:
    hide = tmp_path / "hide-ray"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None  # as if not installed\n")
    env.env["PYTHONPATH"] = str(hide)
    env.write_config({"runners": {"backend": "ray", "ray": {"address": "127.0.0.1:6379"}}})
    out = env.run("daemon", "start", "--skip-preflight")
    assert out.returncode == 5, out.stderr
    assert "Ray is not installed" in out.stderr and "pip install 'animus[ray]'" in out.stderr


# -- a real Ray head on 127.0.0.1 -----------------------------------------------
@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    if not HAVE_RAY:
        pytest.skip("Ray is not installed: pip install -e '.[test,ray]'")
    from animus.workflow.remote.ray_cluster import LoopbackCluster, non_loopback_sockets

    problem = LoopbackCluster.pinning_problem()
    if problem:  # no guarantee of loopback only: Ray must not start
        pytest.skip(f"cannot pin Ray to 127.0.0.1: {problem}")
    cluster = LoopbackCluster(num_cpus=2)
    cluster.start_head()
    try:
        cluster.wait_nodes(1, timeout=120)
        bad = non_loopback_sockets(cluster.pids())
        assert not bad, f"Ray listens or talks beyond loopback: {bad}"
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


def assert_loopback_only(cluster: Any, env: Env) -> None:
    from animus.workflow.remote.ray_cluster import non_loopback_sockets

    daemon = env.status()["pid"]
    bad = non_loopback_sockets([*cluster.pids(), daemon])
    assert not bad, f"beyond loopback: {bad}"


def boot(env: Env, cluster: Any, workflows: str, **ray: Any) -> dict[str, Any]:
    git = ["git", "-C", str(env.project), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (env.project / "README.md").write_text("the task's code\n")
    subprocess.run([*git, "add", "README.md"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    work = env.home.parent / "node-work"
    env.write_config({"restart": FAST_RESTART, "pool_size": 2, "interval_secs": 0.2,
                      "runners": {"backend": "ray", "ray": {
                          "address": cluster.address, "daemon_address": "127.0.0.1", "work_dir": str(work),
                          "heartbeat_secs": 0.5, "heartbeat_timeout_secs": 3, **ray}}})
    env.write_workflows(workflows)
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    env.install_probe("probe-provider")
    env.start()
    runners = wait_until(lambda: (r := env.status()["runners"])["connected"] and r, timeout=60,
                         what="the daemon to connect to Ray")
    assert_loopback_only(cluster, env)  # before any workflow runs
    return dict(runners)


def git_branch(env: Env) -> str:
    out = subprocess.run(["git", "-C", str(env.project), "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def task(env: Env, title: str) -> str:
    return env.json("subject", "create", "--title", title, "--status", "ready")["subject"]["id"]  # type: ignore[no-any-return]


def run(env: Env, title: str, workflow: str) -> str:
    return env.json("workflow", "run", "--task-id", task(env, title), "--workflow", workflow)["workflow_id"]  # type: ignore[no-any-return]


def get(env: Env, wf: str) -> dict[str, Any]:
    return env.call("workflow/get", {"id": wf})  # type: ignore[no-any-return]


def wait_status(env: Env, wf: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    return wait_until(lambda: (w := get(env, wf))["status"] in statuses and w, timeout=timeout,
                      what=f"workflow {wf} to reach {statuses}")


def remote_child(env: Env, wf: str) -> dict[str, Any] | None:
    for sup in env.call("daemon/status")["tree"]:
        for child in sup.get("children", []):
            if child["name"] == wf and child.get("node"):
                return child  # type: ignore[no-any-return]
    return None


def gate(marks: Path, flag: Path, idem: str = "idempotent", name: str = "gated") -> str:
    wait = f"echo \\\"$PWD $ANIMUS_BRANCH\\\" >> {marks}; while ! test -f {flag}; do sleep 0.05; done"
    return f"""
  {name}_work: {{mode: command, idempotency: {idem}, command: {{program: sh, args: [-c, "{wait}"]}}}}
"""


WORKFLOWS = """
phases:
{phases}
  check: {{mode: command, idempotency: idempotent, command: {{program: sh, args: [-c, "cat README.md; echo checked"]}}}}
workflows:
  - id: gated
    phases: [gated_work, check]
  - id: risky
    phases: [risky_work, check]
"""


@pytest.fixture
def ray_env(env: Env, ray_cluster: Any, tmp_path: Path) -> Iterator[tuple[Env, Any, Path]]:
    # supervisors exec'd, not forked: the tests read the runners' keys from the workflows supervisor's
    # /proc/<pid>/environ, which for a forked process shows the environment its zygote was exec'd with
    env.env["ANIMUS_ZYGOTE"] = "0"
    yield env, ray_cluster, tmp_path


@needs_ray
def test_remote_run_end_to_end(ray_env: tuple[Env, Any, Path]) -> None:
    env, cluster, tmp = ray_env
    marks, flag = tmp / "marks", tmp / "flag"
    runners = boot(env, cluster, WORKFLOWS.format(phases=gate(marks, flag) + gate(marks, flag, name="risky")))
    assert runners["control_endpoint"].startswith("tcp://127.0.0.1:")
    assert runners["bus_endpoint"].startswith("tcp://127.0.0.1:")
    assert [n["ip"] for n in runners["nodes"]] == ["127.0.0.1"]
    # the tcp control socket completes no handshake without the runners' CURVE key ...
    client = ControlClient(runners["control_endpoint"], timeout=2)
    with pytest.raises(Unavailable):
        client.call("daemon/status")
    client.close()
    # ... and with it, answers nothing without the daemon's token (both reach the workflows
    # supervisor in its environment only: read it as a same-user process could)
    workflows = next(s for s in env.status()["tree"] if s["name"] == "workflows")
    keys = ClientKeys.from_env(psutil.Process(workflows["pid"]).environ())
    assert keys is not None and keys.server in (Path(env.status()["state_root"]) / "keys" / "daemon.key").read_text()
    sup_file = Path(env.status()["state_root"]) / "state" / "supervisors" / "workflows.json"
    assert keys.secret not in sup_file.read_text()
    assert "token" not in json.loads(sup_file.read_text())["service_config"]["remote"]
    client = ControlClient(runners["control_endpoint"], timeout=5, curve=keys)
    with pytest.raises(InvalidInput, match="token"):
        client.call("daemon/status")
    client.close()

    wf = run(env, "remote", "gated")
    wait_until(lambda: marks.exists(), timeout=60, what="the phase to start on the node")
    stream = subprocess.Popen([*ANIMUS, "daemon", "stream", "--workflow", wf, "--json"], cwd=env.project, env=env.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert stream.stderr is not None and "streaming events" in stream.stderr.readline()
        child = wait_until(lambda: remote_child(env, wf), timeout=10, what="the run in daemon status")
        assert child["pid"] is None and child["backend"] == "ray" and child["node"].startswith("127.0.0.1/")
        status = env.status()
        node = status["runners"]["nodes"][0]
        assert node["alive"] and node["runs"] == [wf]
        text = env.run("daemon", "status", check=True).stdout
        assert "runners: ray" in text and f"node={child['node']}" in text
        worktree, branch = marks.read_text().split()
        assert branch == git_branch(env)
        work = env.home.parent / "node-work"
        assert Path(worktree).is_relative_to(work) and Path(worktree) != env.project
        assert (Path(worktree) / "README.md").read_text() == "the task's code\n"
        assert not any(work.rglob("workflow.db"))  # the remote runner never opened SQLite
        flag.write_text("go")
        lines, _ = stream.communicate(timeout=60)
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.communicate()
    done = wait_status(env, wf, "completed")
    assert [p["status"] for p in done["phases"]] == ["completed", "completed"]
    assert "the task's code" in done["phases"][1]["attempt_list"][0]["output_tail"]
    events = [json.loads(x) for x in lines.splitlines() if x.startswith("{")]
    kinds = [e["kind"] for e in events]
    assert kinds[-1] == "workflow_completed" and kinds.count("phase_completed") == 2
    started = [e for e in events if e["kind"] == "phase_started"]
    assert started and all(e["data"]["node"] == child["node"] for e in started)
    assert any(e["kind"] == "phase_output" and "checked" in e["data"]["line"] for e in events)
    wait_until(lambda: not (work / Path(worktree).relative_to(work)).exists(), timeout=10,
               what="the run's worktree to be removed after the run")
    # the outcome reaches the task once the daemon has seen the run end (after workflow_completed)
    wait_until(lambda: env.json("subject", "get", "--id", done["subject_id"])["subject"]["status"] == "done",
               timeout=15, what="the task marked done")
    # cancel reaches a remote runner (through its heartbeat) and stops its command
    flag.unlink()
    wf2 = run(env, "to cancel", "gated")
    wait_until(lambda: remote_child(env, wf2), timeout=60, what="the second run to start")
    assert env.json("workflow", "cancel", wf2)["workflow"]["status"] == "cancelled"
    assert_loopback_only(cluster, env)


def worker_of(env: Env, wf: str) -> dict[str, Any]:
    return wait_until(lambda: (c := remote_child(env, wf)) and c.get("worker_pid") and c.get("remote_pid") and c,
                      timeout=30, what=f"{wf}'s worker on the node")


@needs_ray
def test_killed_ray_worker_is_recovered_by_idempotency(ray_env: tuple[Env, Any, Path]) -> None:
    env, cluster, tmp = ray_env
    marks, flag = tmp / "marks", tmp / "flag"
    boot(env, cluster, WORKFLOWS.format(phases=gate(marks, flag) + gate(marks, flag, "sideeffecting", "risky")))
    safe, risky = run(env, "safe", "gated"), run(env, "risky", "risky")
    wait_until(lambda: marks.exists() and len(marks.read_text().splitlines()) == 2, timeout=60,
               what="both phases to start on the node")
    for wf in (safe, risky):
        os.kill(worker_of(env, wf)["worker_pid"], signal.SIGKILL)  # Ray's worker process, mid-phase
    blocked = wait_status(env, risky, "blocked")
    assert blocked["blocked_reason"] == IDEMPOTENCY_BLOCK
    crashed = blocked["phases"][0]["attempt_list"][-1]
    assert crashed["status"] == "crashed" and "WorkerCrashedError" in crashed["error"]
    flag.write_text("go")
    done = wait_status(env, safe, "completed")
    assert [a["status"] for a in done["phases"][0]["attempt_list"]] == ["crashed", "completed"]  # retried on its own
    env.run("workflow", "resume", risky, "--force", check=True)  # the operator's decision
    wait_status(env, risky, "completed")


@needs_ray
def test_frozen_node_is_lost_by_missed_heartbeats(ray_env: tuple[Env, Any, Path]) -> None:
    env, cluster, tmp = ray_env
    marks, flag = tmp / "marks", tmp / "flag"
    boot(env, cluster, WORKFLOWS.format(phases=gate(marks, flag) + gate(marks, flag, name="risky")))
    wf = run(env, "frozen", "gated")
    wait_until(lambda: marks.exists(), timeout=60, what="the phase to start")
    child = worker_of(env, wf)
    frozen = [psutil.Process(child["worker_pid"]), psutil.Process(child["remote_pid"])]
    for proc in frozen:
        proc.suspend()  # SIGSTOP: to the daemon the node has gone silent; Ray sees nothing wrong
    try:
        recovering = wait_until(lambda: get(env, wf)["phases"][0]["attempt_list"][0]["status"] == "crashed",
                                timeout=30, what="the silent run to be declared lost")
        assert recovering
    finally:
        for proc in frozen:
            try:
                proc.resume()
            except psutil.Error:
                pass
    lost = get(env, wf)["phases"][0]["attempt_list"][0]
    assert "no heartbeat" in lost["error"]
    flag.write_text("go")
    done = wait_status(env, wf, "completed")
    assert [a["status"] for a in done["phases"][0]["attempt_list"]] == ["crashed", "completed"]
    wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in frozen),
               timeout=15, what="the fenced runner and its worker to be gone")


@needs_ray
def test_run_no_node_can_take_is_blocked(ray_env: tuple[Env, Any, Path]) -> None:
    env, cluster, tmp = ray_env
    marks, flag = tmp / "marks", tmp / "flag"
    boot(env, cluster, WORKFLOWS.format(phases=gate(marks, flag) + gate(marks, flag, name="risky")),
         resources={"gpu_box": 1}, placement_timeout_secs=1)
    blocked = wait_status(env, run(env, "needs a gpu box", "gated"), "blocked")
    assert "no alive node has the resources" in blocked["blocked_reason"]
    assert not marks.exists()


@needs_ray
def test_killed_daemon_takes_its_remote_runner_along(ray_env: tuple[Env, Any, Path]) -> None:
    env, cluster, tmp = ray_env
    marks, flag = tmp / "marks", tmp / "flag"
    boot(env, cluster, WORKFLOWS.format(phases=gate(marks, flag) + gate(marks, flag, name="risky")))
    wf = run(env, "orphan?", "gated")
    wait_until(lambda: marks.exists(), timeout=60, what="the phase to start")
    child = worker_of(env, wf)
    runner = psutil.Process(child["remote_pid"])
    on_node = [psutil.Process(child["worker_pid"]), runner, *runner.children()]
    os.kill(env.status()["pid"], signal.SIGKILL)  # the daemon, and with it the Ray driver, dies
    wait_until(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in on_node),
               timeout=15, what="the worker, runner and command on the node to die with their owner")
    env.start()
    wait_until(lambda: env.status()["runners"]["connected"], timeout=60, what="the new daemon to reconnect")
    flag.write_text("go")
    done = wait_status(env, wf, "completed")
    assert [a["status"] for a in done["phases"][0]["attempt_list"]] == ["crashed", "completed"]

