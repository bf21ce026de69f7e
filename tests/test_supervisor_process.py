"""The supervisor and the process layer together, with real processes and no daemon.

A ``Supervisor`` runs on an event loop in a background thread; its children
are small Python programs that acknowledge their start by writing
``ready <pid>`` on stderr (the harness turns that line into ``child_ready``,
as the plugin host turns a handshake into it). The test thread waits on the
recorded events with ``wait_until``, never with a bare sleep, and checks with
psutil that nothing is left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import psutil
import pytest
from conftest import alive

from animus.process import handle as process
from animus.supervision.spec import (
    Backoff,
    BrutalKill,
    ChildSpec,
    Shutdown,
    Strategy,
    SupervisorFlags,
    Timeout,
)
from animus.supervision.supervisor import ChildState, Supervisor
from animus.testing import check_sequence_matches, wait_until

T = TypeVar("T")

# modes, comma separated: hang (never acknowledge), late (acknowledge after 1 s),
# ignore_sigterm, escape (start a grandchild in a session of its own and report its pid)
CHILD = r"""
import os, signal, subprocess, sys, time
modes = set(sys.argv[1].split(","))
if "ignore_sigterm" in modes:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "escape" in modes:
    gc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    print(f"grandchild {gc.pid}", file=sys.stderr, flush=True)
if "late" in modes:
    time.sleep(1.0)
if "hang" not in modes:
    print(f"ready {os.getpid()}", file=sys.stderr, flush=True)
while True:
    time.sleep(60)
"""

FAST = Backoff(max_restarts=5, initial=0.05, factor=2.0, cap=0.2, healthy_window=30.0)


def child(cid: str, mode: str = "ok", shutdown: Shutdown | None = None, backoff: Backoff = FAST) -> ChildSpec:
    return ChildSpec(id=cid, start={"argv": [sys.executable, "-c", CHILD, mode]},
                     shutdown=shutdown or Timeout(2.0), backoff=backoff)


class Harness:
    """One supervisor on a loop thread; every emitted event and every spawn is recorded."""

    def __init__(self, flags: SupervisorFlags, specs: list[ChildSpec], ready_timeout: float = 3.0) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self.spawns: list[tuple[float, str, int]] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="supervisor-loop", daemon=True)
        self.thread.start()

        async def build() -> Supervisor:
            return Supervisor("test", flags, specs, self._launch, self._emit, ready_timeout=ready_timeout)

        self.sup = self.call(build())

    # -- loop side -------------------------------------------------------------
    def _launch(self, spec: ChildSpec) -> process.ChildProcess:
        proc = process.spawn(spec.start["argv"], dict(os.environ))
        with self.lock:
            self.spawns.append((time.monotonic(), spec.id, proc.pid))
        return proc

    def _emit(self, kind: str, level: str, data: dict[str, Any]) -> None:
        with self.lock:
            self.events.append((time.monotonic(), kind, dict(data)))
        if kind == "child_stderr" and data["line"].startswith("ready "):
            self.sup.child_ready(data["child"], int(data["line"].split()[1]))

    # -- test side -------------------------------------------------------------
    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def of(self, kind: str, **match: Any) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(t, d) for t, k, d in self.events
                    if k == kind and all(d.get(key) == v for key, v in match.items())]

    def after(self, since: float, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [d for t, d in self.of(kind, **match) if t >= since]

    def pid(self, cid: str) -> int:
        proc = self.sup.children[cid].proc
        assert proc is not None
        return proc.pid

    def state(self, cid: str) -> ChildState:
        return self.sup.children[cid].state

    def all_pids(self) -> set[int]:
        with self.lock:
            pids = {pid for _, _, pid in self.spawns}
            for _, kind, data in self.events:
                if kind == "child_stderr" and data["line"].startswith("grandchild "):
                    pids.add(int(data["line"].split()[1]))
        return pids

    def wait_running(self, cid: str, not_pid: int | None = None, timeout: float = 5.0) -> int:
        def ready() -> int | None:
            rec = self.sup.children[cid]
            if rec.state is ChildState.RUNNING and rec.proc is not None and rec.proc.pid != not_pid:
                return rec.proc.pid
            return None

        pid = wait_until(ready, timeout, what=f"{cid} running (not pid {not_pid})")
        assert pid is not None
        return pid

    def close(self) -> None:
        try:
            if not self.sup.closing:
                self.call(self.sup.shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
        wait_until(lambda: not alive(self.all_pids()), timeout=15, what="every child to be gone")


@pytest.fixture
def harnesses() -> Iterator[list[Harness]]:
    made: list[Harness] = []
    yield made
    for h in made:
        h.close()


def make(harnesses: list[Harness], flags: SupervisorFlags, specs: list[ChildSpec], **kw: Any) -> Harness:
    h = Harness(flags, specs, **kw)
    harnesses.append(h)
    return h


def test_ordered_start_then_reverse_order_shutdown_term_timeout_kill(harnesses: list[Harness]) -> None:
    h = make(harnesses, SupervisorFlags(), [
        child("a"), child("b"),
        child("stubborn", "ignore_sigterm", shutdown=Timeout(0.5)),
        child("brutal", shutdown=BrutalKill()),
    ])
    h.call(h.sup.start())
    order = ["a", "b", "stubborn", "brutal"]
    assert [cid for _, cid, _ in h.spawns] == order
    # started means acknowledged: each child is spawned only after the previous one said ready
    for prev, (spawned_at, _, _) in zip(order, h.spawns[1:]):
        (ready_at, _), = h.of("child_started", child=prev)
        assert spawned_at > ready_at
    assert all(h.state(c) is ChildState.RUNNING for c in order)
    pids = {c: h.pid(c) for c in order}

    h.call(h.sup.shutdown())
    exits = h.of("child_exited")
    assert [d["child"] for _, d in exits] == list(reversed(order))
    by_child = {d["child"]: (t, d) for t, d in exits}
    assert all(d["requested"] and d["pid"] == pids[c] for c, (_, d) in by_child.items())
    # BrutalKill: SIGKILL at once, no grace period (the child would have died of a SIGTERM)
    assert by_child["brutal"][1]["signal"] == signal.SIGKILL
    # ignores SIGTERM: killed once its 0.5 s shutdown timeout ran out, and only then
    # did the next child (b) get its SIGTERM
    assert by_child["stubborn"][1]["signal"] == signal.SIGKILL
    assert by_child["stubborn"][0] - by_child["brutal"][0] >= 0.5
    for c in ("b", "a"):
        assert by_child[c][1]["signal"] == signal.SIGTERM
    assert not alive(set(pids.values()))
    assert all(h.state(c) is ChildState.STOPPED for c in order)


@pytest.mark.parametrize("strategy,restarted", [
    (Strategy.ONE_FOR_ONE, ["b"]),
    (Strategy.ONE_FOR_ALL, ["a", "b", "c"]),
    (Strategy.REST_FOR_ONE, ["b", "c"]),
])
def test_strategy_restarts_the_right_siblings(harnesses: list[Harness], strategy: Strategy,
                                              restarted: list[str]) -> None:
    h = make(harnesses, SupervisorFlags(strategy=strategy), [child("a"), child("b"), child("c")])
    h.call(h.sup.start())
    before = {c: h.pid(c) for c in "abc"}
    t0 = time.monotonic()
    os.kill(before["b"], signal.SIGKILL)
    after = {c: h.wait_running(c, not_pid=before[c]) for c in restarted}
    wait_until(lambda: all(h.state(c) is ChildState.RUNNING for c in "abc"), 5, what="all running")
    untouched = [c for c in "abc" if c not in restarted]
    assert {c: h.pid(c) for c in untouched} == {c: before[c] for c in untouched}
    assert not alive({before[c] for c in restarted})
    exits = h.after(t0, "child_exited")
    # the failed child first (a crash), then its siblings in reverse start order (requested stops)
    assert [(d["child"], d["requested"]) for d in exits] == [("b", False)] + [
        (c, True) for c in reversed(restarted) if c != "b"]
    assert exits[0]["signal"] == signal.SIGKILL
    # restarted in start order, each after the previous acknowledged
    assert [d["child"] for d in h.after(t0, "child_started")] == restarted
    assert [cid for t, cid, _ in h.spawns if t >= t0] == restarted
    assert {c: h.sup.children[c].restarts for c in "abc"} == {c: int(c == "b") for c in "abc"}
    assert set(after.values()).isdisjoint(before.values())
    # and as one sequence: every stop of the plan before its first start
    with h.lock:
        seq = [(k, d["child"]) for t, k, d in h.events if t >= t0 and k in ("child_exited", "child_started")]
    check_sequence_matches(seq, [("child_exited", "b"), *[("child_exited", c) for c in reversed(restarted) if c != "b"],
                                 *[("child_started", c) for c in restarted]])


def test_restart_intensity_exceeded_escalates(harnesses: list[Harness]) -> None:
    h = make(harnesses, SupervisorFlags(intensity=2, period=10.0), [child("a"), child("b")])
    h.call(h.sup.start())
    for _ in range(2):
        old = h.pid("a")
        os.kill(old, signal.SIGKILL)
        h.wait_running("a", not_pid=old)
    assert not h.sup.escalated.is_set()
    os.kill(h.pid("a"), signal.SIGKILL)
    wait_until(h.sup.escalated.is_set, 15, what="the supervisor to escalate")
    (_, esc), = h.of("supervisor_escalated")
    assert esc == {"supervisor": "test", "reason": "more than 2 restarts in 10.0s"}
    assert h.sup.escalation_reason == esc["reason"]
    assert len(h.of("child_restarting")) == 2  # the third exit was not restarted
    assert h.state("a") is ChildState.STOPPED
    # the owner of an escalated supervisor shuts it down: the sibling goes too
    b = h.pid("b")
    h.call(h.sup.shutdown())
    assert not alive({b})


@pytest.mark.parametrize("mode", ["hang", "hang,ignore_sigterm"])
def test_child_hung_at_start_is_killed_after_ready_timeout(harnesses: list[Harness], mode: str) -> None:
    once = Backoff(max_restarts=1, initial=0.05, cap=0.05, healthy_window=30.0)
    h = make(harnesses, SupervisorFlags(), [child("hung", mode, shutdown=Timeout(0.3), backoff=once), child("ok")],
             ready_timeout=0.5)
    t0 = time.monotonic()
    h.call(h.sup.start())
    first = h.spawns[0][2]
    # start() moved on only after giving up on the hung child and stopping it
    assert not alive({first})
    timeouts = h.of("child_start_timeout", child="hung")
    assert timeouts[0][1]["pid"] == first and timeouts[0][0] - t0 >= 0.5
    assert "no ready acknowledgement within 0.5s" in timeouts[0][1]["error"]
    (_, exit1), *_ = h.of("child_exited", child="hung")
    assert exit1["pid"] == first and not exit1["requested"]
    assert exit1["signal"] == (signal.SIGKILL if "ignore_sigterm" in mode else signal.SIGTERM)
    # the failed start counts against the budget: one restart, which hangs too, then disabled
    wait_until(lambda: h.state("hung") is ChildState.DISABLED, 5, what="hung child disabled")
    assert [cid for _, cid, _ in h.spawns].count("hung") == 2
    assert not alive({pid for _, cid, pid in h.spawns if cid == "hung"})
    assert "no ready acknowledgement" in h.sup.children["hung"].last_error
    (_, disabled), = h.of("plugin_disabled")
    assert disabled["child"] == "hung" and disabled["restarts"] == 1
    assert h.state("ok") is ChildState.RUNNING


def test_terminate_reaches_a_grandchild_that_left_the_process_group(harnesses: list[Harness]) -> None:
    h = make(harnesses, SupervisorFlags(), [child("parent", "escape")])
    h.call(h.sup.start())
    grandchild = int(h.of("child_stderr", child="parent")[0][1]["line"].split()[1])
    assert alive({grandchild})
    h.call(h.sup.stop_child("parent"))
    wait_until(lambda: not alive({grandchild}), 15, what="the escaped grandchild to die with its parent")
    assert h.state("parent") is ChildState.STOPPED and h.sup.children["parent"].restarts == 0


def test_child_exits_on_its_own_when_its_supervisor_is_killed() -> None:
    """No orphans: the parent-death signal set at spawn outlives the parent's SIGKILL."""
    with subprocess.Popen(
        [sys.executable, "-c", (
            "import os, sys, time\n"
            "from animus.process import handle as process\n"
            "c = process.spawn([sys.executable, '-c', 'import time; time.sleep(600)'], os.environ)\n"
            "print(c.pid, flush=True)\n"
            "time.sleep(600)\n")],
        stdout=subprocess.PIPE, text=True,
    ) as owner:
        try:
            assert owner.stdout is not None
            worker = int(owner.stdout.readline())
            assert alive({worker})
            owner.kill()
            owner.wait(5)
            wait_until(lambda: not alive({worker}), 15, what="the worker of a killed supervisor to exit")
        finally:
            owner.kill()


def test_a_stopped_child_gets_its_sigterm_without_waiting_for_the_timeout(harnesses: list[Harness]) -> None:
    """A SIGSTOPped child cannot act on SIGTERM until continued: terminate sends SIGCONT too."""
    h = make(harnesses, SupervisorFlags(), [child("frozen", shutdown=Timeout(3.0))])
    h.call(h.sup.start())
    pid = h.pid("frozen")
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, 15, what="the child to be stopped")
    assert h.state("frozen") is ChildState.RUNNING  # a stop is not an exit
    h.call(h.sup.stop_child("frozen"))
    (_, exited), = h.of("child_exited", child="frozen")
    # died of the SIGTERM: had it waited for the 3 s timeout, the SIGKILL would have killed it
    assert exited["signal"] == signal.SIGTERM and exited["requested"]
    assert h.sup.children["frozen"].restarts == 0


def test_a_child_acknowledged_after_its_start_timed_out_is_not_reported_started(harnesses: list[Harness]) -> None:
    """Its start failed (no acknowledgement in time) and it is being stopped: an
    acknowledgement arriving meanwhile must not mark it running (a pid reported as
    started and then killed by its own supervisor is what chaos tests trip over)."""
    once = Backoff(max_restarts=1, initial=0.05, cap=0.05, healthy_window=30.0)
    h = make(harnesses, SupervisorFlags(), [child("late", "late,ignore_sigterm", shutdown=Timeout(3.0), backoff=once)],
             ready_timeout=0.5)
    h.call(h.sup.start())
    first = h.spawns[0][2]
    assert h.of("child_start_timeout", child="late")[0][1]["pid"] == first
    wait_until(lambda: h.of("child_exited", child="late", pid=first), 15, what="the timed-out child to be killed")
    acknowledged = [line for _, d in h.of("child_stderr", child="late") if (line := d["line"]) == f"ready {first}"]
    assert acknowledged, "the child acknowledged (late) before it was killed"
    assert not h.of("child_started", child="late", pid=first)
