"""Chaos: the real daemon tree, killed with real signals, and a count of what was lost.

Each test starts a real daemon (``env`` fixture: a temp ANIMUS_HOME) with the
scriptable probe installed as plugins under several role supervisors, then
kills processes with SIGKILL / SIGSTOP and checks, against the event log
(``<state_root>/logs/events.jsonl``), ``daemon status --json`` and psutil:

- every permanent child is back (acknowledged: ``child_started``) after
  its death while its restart budget remains;
- a child that keeps dying is restarted exactly 5 times, then disabled;
- every kill is matched by exactly one restart (nothing lost, nothing extra),
  and no worker dies unless the test killed it;
- a worker whose supervisor dies exits on its own;
- after the root is SIGKILLed no process of the tree survives, and the
  next start reaps what a crashed run recorded (only if the create time matches);
- after ``daemon stop`` nothing is left.

Waiting is always on a condition with a generous deadline: these tests
assert what happens, not how fast (``bench/`` measures restart latency).
Victims are signalled through a pidfd taken when their start was seen, so a
kill can never reach a process that reused a dead worker's pid.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import FAST_RESTART, Env, alive

from animus.bus.rpc import ControlClient
from animus.errors import Unavailable
from animus.state.scope import Scope
from animus.testing import EventRecorder, wait_until

pytestmark = pytest.mark.chaos

BACK_WITHIN = 15.0  # a deadline for a replacement's acknowledged start, not a latency bound
HEALTHY_WINDOW = 0.3
CHAOS_RESTART = {**FAST_RESTART, "healthy_window": HEALTHY_WINDOW}
# probes spread over four role supervisors
PROBES = [("prov-a", "provider"), ("prov-b", "provider"), ("subj", "subject"),
          ("trig", "trigger"), ("xport", "transport")]
KILLS = 200


def by_name(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every node of a ``daemon status`` tree, supervisors and workers, by name."""
    out: dict[str, dict[str, Any]] = {}
    for sup in status["tree"]:
        out[sup["name"]] = sup
        for child in sup.get("children", []):
            out[child["name"]] = child
    return out


def install(env: Env, probes: list[tuple[str, str]]) -> None:
    for name, role in probes:
        env.install_probe(name, role=role, kinds="probe" if role == "subject" else "")


class Tree:
    """The running daemon as a test sees it: its control socket and its event log."""

    def __init__(self, env: Env) -> None:
        status = env.status()
        self.root_pid: int = status["pid"]
        self.state_root = Path(status["state_root"])
        scope = Scope(project_root=Path(status["project_root"]), name=self.state_root.name,
                      home=env.home, root=self.state_root)
        # not always <state_root>/run: a long state root puts the sockets under /tmp
        self.client = ControlClient(scope.endpoint("control"), timeout=5)
        self.log = EventRecorder.of_state_root(self.state_root)

    def status(self) -> dict[str, Any]:
        return self.client.call("daemon/status")  # type: ignore[no-any-return]

    def nodes(self) -> dict[str, dict[str, Any]]:
        return by_name(self.status())

    def pids(self) -> set[int]:
        return {n["pid"] for n in self.nodes().values() if n.get("pid")} | {self.root_pid}

    def started(self, child: str, not_pid: int | None = None) -> dict[str, Any] | None:
        """The latest acknowledged start of ``child`` (a pid other than ``not_pid``)."""
        starts = self.log.of("child_started", child=child)
        return starts[-1] if starts and starts[-1]["pid"] != not_pid else None

    def wait_back(self, child: str, old_pid: int) -> int:
        new = wait_until(lambda: self.started(child, not_pid=old_pid), BACK_WITHIN,
                         what=f"{child} to be replaced after pid {old_pid} died")
        return int(new["pid"])

    def ping(self, plugin: str, timeout: float = 3.0) -> int:
        reply = self.client.call("plugin/call", {"name": plugin, "method": "$/ping", "timeout": timeout},
                                 timeout=timeout + 6)
        return int(reply["result"]["pid"])

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def tree_of(env: Env) -> Iterator[Callable[[], Tree]]:
    opened: list[Tree] = []

    def open_tree() -> Tree:
        opened.append(Tree(env))
        return opened[-1]

    yield open_tree
    for tree in opened:
        tree.close()


def stop_and_check_nothing_left(env: Env, pids: set[int]) -> None:
    env.run("daemon", "stop", check=True)
    wait_until(lambda: not alive(pids), BACK_WITHIN, what=f"nothing left after daemon stop: {alive(pids)}")


def test_two_hundred_random_kills_lose_nothing(env: Env, tree_of: Callable[[], Tree]) -> None:
    """SIGKILL random workers 200 times; each comes back; kills == restarts, no death unasked."""
    env.write_config({"restart": CHAOS_RESTART, "ready_timeout": 5})
    install(env, PROBES)
    env.start("--skip-preflight")
    tree = tree_of()
    names = [n for n, _ in PROBES]
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    up: dict[str, tuple[int, int, float]] = {}  # name -> (pid, pidfd, when we saw it acknowledged)
    down: dict[str, tuple[int, float]] = {}  # name -> (killed pid, when)
    kills: Counter[str] = Counter()
    killed_pids: set[int] = set()
    seen_pids = tree.pids()
    back_times: list[float] = []

    def observe() -> None:
        now = time.monotonic()
        for ev in tree.log.poll():
            data = ev["data"]
            if ev["kind"] != "child_started" or data.get("child") not in names:
                continue
            name, pid = data["child"], data["pid"]
            if name in down and pid != down[name][0]:
                back_times.append(now - down.pop(name)[1])
            if name in up:
                os.close(up.pop(name)[1])
            try:  # a handle on this very process: a later kill cannot reach a reused pid
                up[name] = (pid, os.pidfd_open(pid), now)
            except ProcessLookupError:
                up[name] = (pid, -1, now)  # gone already: the kill below reports it
            seen_pids.add(pid)
        for name, (pid, killed_at) in down.items():
            assert now - killed_at <= BACK_WITHIN, (
                f"{name} (pid {pid}) not back {now - killed_at:.2f}s after its SIGKILL (seed {seed})")

    def died_unasked(name: str, pid: int) -> str:
        exited = wait_until(lambda: tree.log.of("child_exited", child=name, pid=pid), 10,
                            what=f"the exit of {name} pid {pid}")
        return f"{name} pid {pid} died before the test killed it: {exited[0]} (seed {seed})"

    deadline = time.monotonic() + 240
    try:
        while sum(kills.values()) < KILLS:
            assert time.monotonic() < deadline, f"only {sum(kills.values())} kills done (seed {seed})"
            observe()
            now = time.monotonic()
            # kill only what has been up longer than the healthy window, so its budget resets
            ripe = [n for n in names if n in up and now - up[n][2] > HEALTHY_WINDOW]
            if not ripe:
                time.sleep(0.005)  # poll interval of this loop, not synchronisation
                continue
            name = rng.choice(ripe)
            pid, pidfd, _ = up.pop(name)
            try:
                if pidfd < 0 or alive({pid}) == []:
                    raise ProcessLookupError
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pytest.fail(died_unasked(name, pid))
            finally:
                if pidfd >= 0:
                    os.close(pidfd)
            down[name] = (pid, time.monotonic())
            kills[name] += 1
            killed_pids.add(pid)

        def all_back() -> bool:
            observe()
            return not down

        wait_until(all_back, BACK_WITHIN + 0.5, what="the last victims to come back")
    finally:
        for _, pidfd, _ in up.values():
            if pidfd >= 0:
                os.close(pidfd)
    assert len(back_times) == KILLS
    assert set(kills) == set(names), f"every probe, under every supervisor, was hit: {kills}"

    # nothing lost: one exit and one restart (with a fresh budget) per kill, no more
    restarting = [d for d in tree.log.of("child_restarting") if d["child"] in names]
    assert Counter(d["child"] for d in restarting) == kills
    assert {d["restart"] for d in restarting} == {1}
    exits = [d for d in tree.log.of("child_exited") if d["child"] in names]
    assert {d["pid"] for d in exits} == killed_pids and len(exits) == KILLS
    assert all(d["signal"] == signal.SIGKILL and not d["requested"] for d in exits)
    assert not tree.log.of("plugin_disabled")
    nodes = by_name(env.status())  # the operator's view: daemon status --json
    assert {n: nodes[n]["restarts"] for n in names} == dict(kills)
    assert all(nodes[n]["state"] == "running" for n in names)
    assert not alive(killed_pids)
    for name in names:  # each replacement really answers
        assert tree.ping(name) == nodes[name]["pid"]
    print(f"seed {seed}: {KILLS} kills {dict(kills)}; back after median "
          f"{sorted(back_times)[KILLS // 2] * 1000:.0f} ms, max {max(back_times) * 1000:.0f} ms")

    stop_and_check_nothing_left(env, seen_pids | tree.pids())


def test_five_restarts_then_disabled_and_a_killed_supervisor_restarts_its_workers(
        env: Env, tree_of: Callable[[], Tree]) -> None:
    """A worker killed until its budget is spent (5 restarts, then disabled); then its
    supervisor is SIGKILLed: the workers under it exit on their own, the root restarts the
    supervisor, the healthy worker comes back, the disabled one stays disabled."""
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5})
    install(env, [("victim", "provider"), ("bystander", "provider")])
    env.start("--skip-preflight")
    tree = tree_of()
    before = tree.nodes()
    pid, bystander = before["victim"]["pid"], before["bystander"]["pid"]
    victims = {pid}
    for restart in range(1, 6):
        os.kill(pid, signal.SIGKILL)
        pid = tree.wait_back("victim", pid)  # budget remains: it comes back
        victims.add(pid)
        assert tree.log.of("child_restarting", child="victim")[-1]["restart"] == restart
    os.kill(pid, signal.SIGKILL)  # the sixth death spends the budget
    disabled = tree.log.wait_for("plugin_disabled", timeout=BACK_WITHIN, plugin="victim")
    assert disabled[0]["restarts"] == 5
    node = tree.nodes()["victim"]
    assert node["state"] == "disabled" and node["restarts"] == 5
    assert "SIGKILL" in node["last_error"]
    assert len(tree.log.of("child_restarting", child="victim")) == 5
    assert len(tree.log.of("child_started", child="victim")) == 6  # first start + 5 restarts
    assert not alive(victims)
    with pytest.raises(Unavailable, match="disabled after 5 restarts"):
        tree.ping("victim")
    # the neighbour never noticed, nor did the daemon: plugin trouble is not its death
    assert tree.nodes()["bystander"]["pid"] == bystander and tree.nodes()["bystander"]["restarts"] == 0
    assert tree.ping("bystander") == bystander
    assert tree.status()["pid"] == tree.root_pid

    sup = before["providers"]["pid"]
    os.kill(sup, signal.SIGKILL)
    # no orphans: the worker of a dead supervisor exits on its own
    wait_until(lambda: not alive({bystander}), BACK_WITHIN, what="the killed supervisor's worker to exit")
    new_sup = tree.wait_back("providers", sup)
    new_bystander = tree.wait_back("bystander", bystander)
    after = tree.nodes()
    assert after["providers"]["restarts"] == 1 and after["providers"]["pid"] == new_sup
    (exited,) = tree.log.of("child_exited", supervisor="root", child="providers")
    assert exited["pid"] == sup and exited["signal"] == signal.SIGKILL
    assert after["victim"]["state"] == "disabled"  # until the daemon restarts, not the supervisor
    assert len(tree.log.of("child_started", child="victim")) == 6
    assert all(after[s]["pid"] == before[s]["pid"] for s in ("subjects", "triggers", "transports"))
    assert tree.ping("bystander") == new_bystander
    stop_and_check_nothing_left(env, victims | {sup, bystander} | tree.pids())


def test_sigstop_then_sigcont_worker(env: Env, tree_of: Callable[[], Tree]) -> None:
    """A frozen worker: the daemon keeps answering; a short freeze is forgiven; a long one
    is seen by the heartbeat as a hang, and the worker is replaced."""
    env.env["ANIMUS_PING_INTERVAL"] = "0.2"  # 3 missed pings (~1.5 s) mean hung
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5})
    install(env, [("frozen", "provider")])
    env.start("--skip-preflight")
    tree = tree_of()
    pid = tree.ping("frozen")

    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(Unavailable, match="did not answer probe/echo within 0.3s"):
            tree.client.call("plugin/call", {"name": "frozen", "method": "probe/echo", "timeout": 0.3})
        # the control plane does not wait on a frozen worker: status answers while it is
        # still frozen and still the same process (not after the heartbeat replaced it)
        assert tree.nodes()["frozen"]["pid"] == pid
        assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    finally:
        os.kill(pid, signal.SIGCONT)
    assert tree.ping("frozen") == pid
    assert tree.nodes()["frozen"]["restarts"] == 0 and not tree.log.of("child_exited", child="frozen")

    os.kill(pid, signal.SIGSTOP)
    exited = tree.log.wait_for("child_exited", timeout=BACK_WITHIN, child="frozen")
    assert exited[0]["pid"] == pid and not exited[0]["requested"]
    assert "not answering pings" in exited[0]["last_error"]
    tree.wait_back("frozen", pid)
    assert not alive({pid})
    new = tree.nodes()["frozen"]
    assert new["restarts"] == 1 and new["state"] == "running" and tree.ping("frozen") == new["pid"]
    stop_and_check_nothing_left(env, {pid} | tree.pids())


def test_killed_root_leaves_nothing_and_next_start_reaps_leftovers(env: Env, tree_of: Callable[[], Tree]) -> None:
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5})
    install(env, [("w1", "provider"), ("w2", "trigger")])
    env.start("--skip-preflight")
    tree = tree_of()
    pids = tree.pids()
    assert len(pids) == 8  # root, five supervisors, two workers
    os.kill(tree.root_pid, signal.SIGKILL)
    wait_until(lambda: not alive(pids), BACK_WITHIN, what=f"the whole tree to die with its root: {alive(pids)}")

    # a crashed run's record: one process that is still the one recorded (it must be
    # reaped) and one whose pid was recorded with another create time (a reused pid:
    # it must be left alone)
    record = tree.state_root / "daemon" / "pids.json"
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    with subprocess.Popen(sleeper) as leftover, subprocess.Popen(sleeper) as reused:
        try:
            data = json.loads(record.read_text())
            data["pids"][str(leftover.pid)] = psutil.Process(leftover.pid).create_time()
            data["pids"][str(reused.pid)] = psutil.Process(reused.pid).create_time() - 100.0
            record.write_text(json.dumps(data))
            again = env.run("daemon", "start", "--skip-preflight", "--json")
            assert again.returncode == 0, again.stderr
            env.started.append(json.loads(again.stdout)["pid"])
            assert "removed the stale pidfile" in again.stderr
            assert leftover.wait(BACK_WITHIN) == -signal.SIGKILL
            assert reused.poll() is None
        finally:
            leftover.kill()
            reused.kill()


def test_a_workers_own_subprocess_dies_with_a_killed_root(env: Env, tree_of: Callable[[], Tree]) -> None:
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5})
    install(env, [("w1", "provider")])
    env.start("--skip-preflight")
    tree = tree_of()
    pids = tree.pids()
    reply = tree.client.call("plugin/call", {"name": "w1", "method": "probe/spawn_grandchild"})
    tool = psutil.Process(reply["result"]["pid"])
    try:
        os.kill(tree.root_pid, signal.SIGKILL)
        wait_until(lambda: not alive(pids), BACK_WITHIN, what="the tree to die with its root")
        wait_until(lambda: not alive({tool.pid}), BACK_WITHIN, what="the worker's own subprocess to die too")
    finally:
        if tool.is_running():
            tool.kill()
