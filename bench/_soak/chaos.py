"""The chaos: SIGKILLs over every kind of process, SIGSTOP/SIGCONT pairs, crash loops, daemon kills.

Each step takes the tree from ``daemon/status`` and psutil (``targets``),
picks a kind by weight and a process of that kind, and SIGKILLs it through a
pidfd. Some steps instead freeze a process for a while (SIGSTOP, then
SIGCONT through the same pidfd: never a reused pid), and now and then a
sacrificial probe is killed each time it comes back until its budget is
spent. Daemon kills are spread evenly over the run (by kills or by time,
whichever comes first), aimed while a phase is under way, each followed by
``animus daemon start`` and the recovery it does.

Whatever a killed process had below it must be gone ``ORPHAN_GRACE``
seconds later (it died with its owner, or was reaped): a survivor is an orphan.
"""

from __future__ import annotations

import random
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil

from _soak.events import LiveState, LogFollower
from _soak.plan import CRASH_LOOP_SHARE, EXPENSIVE, STOP_SHARE, WEIGHTS, Plan, Tally
from _soak.setup import ROLE_OF, SACRIFICIAL, SoakEnv, start_daemon
from _soak.targets import Targets, Victim, descendants, send
from _soak.watch import ORPHAN_GRACE, Watches, alive
from animus.bus.rpc import ControlClient
from animus.errors import AnimusError

STATUS_EVERY = 0.25
SUPERVISOR_OF = {"trigger": "triggers", "transport": "transports"}


class Chaos:
    def __init__(self, soak: SoakEnv, state: LiveState, follower: LogFollower, rng: random.Random,
                 plan: Plan, on_restart: Callable[[], None]) -> None:
        self.soak, self.state, self.follower, self.rng, self.plan = soak, state, follower, rng, plan
        self.on_restart = on_restart
        self.targets = Targets(soak, state, rng)
        self.tally = Tally()
        self.watches = Watches(soak)
        self.client: ControlClient | None = None
        self._status: tuple[float, dict[str, Any]] | None = None
        self._available: tuple[dict[str, Any], dict[str, list[Victim]]] | None = None
        self.sacrificed: set[str] = set()  # crash-looped in this daemon's life
        self.up_since = time.time()
        self.started = time.monotonic()
        self.last_report = self.started

    # -- plumbing -------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        if self.client is None:
            self.client = ControlClient(self.soak.endpoint("control"), timeout=10)
        try:
            return self.client.call("daemon/status")  # type: ignore[no-any-return]
        except AnimusError:
            self.client.close()
            self.client = None
            raise

    def cached_status(self) -> dict[str, Any]:
        """The tree, asked again at most every ``STATUS_EVERY`` seconds: a stale pid is harmless
        (``send`` checks the process is still the one seen), and each ask costs the daemon."""
        now = time.monotonic()
        if self._status is None or now - self._status[0] > STATUS_EVERY:
            self._status = (now, self.status())
        return self._status[1]

    def available(self, status: dict[str, Any]) -> dict[str, list[Victim]]:
        """What could be hit, by kind, looked up once per ``daemon/status`` answer (psutil over the
        whole tree costs more than a kill): a victim gone since is skipped by ``send``."""
        if self._available is None or self._available[0] is not status:
            self._available = (status, self.targets.snapshot(status))
        return self._available[1]

    def pump(self) -> None:
        self.state.feed(self.follower.poll())
        self.watches.due()
        now = time.monotonic()
        if now - self.last_report > 30:
            self.last_report = now
            print(f"soak: {now - self.started:.0f}s, {sum(self.tally.kills.values())} kills, "
                  f"{self.tally.daemon_kills} daemon kills, {self.state.events} events", file=sys.stderr, flush=True)

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.pump()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.02))

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def kills(self) -> int:
        return sum(self.tally.kills.values())

    # -- the loop -------------------------------------------------------------
    def run(self) -> None:
        while not self.plan.finished(self.kills, self.tally.daemon_kills, self.elapsed()):
            t0 = time.monotonic()
            self.pump()
            if self.plan.daemon_kill_due(self.tally.daemon_kills, self.kills, self.elapsed()):
                self.kill_daemon()
                self.tally.timing["daemon_kill"] += time.monotonic() - t0
                continue
            try:
                status = self.cached_status()
            except AnimusError:
                self.sleep(0.2)
                self.tally.timing["status_fail"] += time.monotonic() - t0
                continue
            t1 = time.monotonic()
            self.tally.timing["status"] += t1 - t0
            try:
                acted = self.step(status, t1)
            except (psutil.Error, OSError) as exc:  # a process gone mid-look: the step is void, the soak goes on
                self.tally.step_errors[f"{type(exc).__name__}: {exc}"[:100]] += 1
                acted = False
            if not acted:
                self.sleep(0.05)  # nothing ripe to hit right now
                continue
            t2 = time.monotonic()
            self.sleep(self.rng.expovariate(1 / self.plan.gap))
            self.tally.timing["gap"] += time.monotonic() - t2
        self.release()

    def step(self, status: dict[str, Any], t1: float) -> bool:
        r = self.rng.random()
        if r < CRASH_LOOP_SHARE:
            self.crash_loop()
            self.tally.timing["crash_loop"] += time.monotonic() - t1
        elif r < CRASH_LOOP_SHARE + STOP_SHARE:
            self.stop_one(status)
            self.tally.timing["stop"] += time.monotonic() - t1
        elif not self.kill_one(status):
            self.tally.timing["no_victim"] += time.monotonic() - t1
            return False
        else:
            self.tally.timing["kill"] += time.monotonic() - t1
        return True

    def release(self) -> None:
        """SIGCONT everything still frozen."""
        self.watches.thaw_all()
        if self.client is not None:
            self.client.close()
            self.client = None

    def _kinds(self, available: dict[str, list[Victim]]) -> list[str]:
        """A kind drawn by weight over every kind; then, if it has nothing to hit right now,
        the cheap kinds that have (a supervisor or a zygote only when drawn: they take a
        whole subtree with them, and drawing them as a fallback would make them common)."""
        first = self.rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        kinds = [k for k in WEIGHTS if k not in EXPENSIVE and k != first and available.get(k)]
        weights = [WEIGHTS[k] for k in kinds]
        order = [first] if available.get(first) else []
        while kinds:
            k = self.rng.choices(range(len(kinds)), weights)[0]
            order.append(kinds.pop(k))
            weights.pop(k)
        return order

    def _hit(self, victim: Victim, sig: int) -> int | None:
        return send(self.soak, victim.pid, victim.create_time, sig)

    def kill_one(self, status: dict[str, Any]) -> bool:
        available = self.available(status)
        for kind in self._kinds(available):
            candidates = available[kind]
            self.rng.shuffle(candidates)
            for victim in candidates:
                below = {} if victim.detached_children else descendants(victim.pid)
                try:
                    self._hit(victim, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                self.tally.kills[victim.kind] += 1
                if victim.kind == "worker":
                    self.tally.worker_roles[victim.label.split(":", 1)[0]] += 1
                self.tally.side_effecting_kills += self.targets.side_effecting_now(victim)
                self._forget(available, victim, below)
                self.watches.check_later(f"the kill of {victim.label}", below)
                return True
        return False

    def _forget(self, available: dict[str, list[Victim]], victim: Victim, below: dict[int, float]) -> None:
        """The victim and what dies with it are no longer candidates (a doomed process is no target)."""
        if victim.kind in EXPENSIVE:
            self._available = None  # a whole subtree goes
            return
        for kind, victims in available.items():
            available[kind] = [v for v in victims if v.pid != victim.pid and v.pid not in below]

    def stop_one(self, status: dict[str, Any]) -> None:
        available = self.available(status)
        kinds = self._kinds(available)
        if not kinds:
            return
        victim = self.rng.choice(available[kinds[0]])
        # mostly short; sometimes long enough for the heartbeat to find a plugin hung
        hold = self.rng.uniform(3.5, 6.0) if self.rng.random() < 0.2 else self.rng.uniform(0.05, 2.5)
        try:
            fd = self._hit(victim, signal.SIGSTOP)
        except ProcessLookupError:
            return
        assert fd is not None
        self.watches.thaw_later(hold, fd, victim.label)
        self.tally.stops[victim.kind] += 1

    def crash_loop(self) -> None:
        """Kill a sacrificial probe each time it comes back, until it is disabled (5 restarts)."""
        name = self.rng.choice(SACRIFICIAL)
        sup = SUPERVISOR_OF[ROLE_OF[name]]
        if name in self.sacrificed or name in self.state.disabled or (sup, name) not in self.state.acked:
            return
        self.sacrificed.add(name)
        self.tally.crash_loops += 1
        last = None
        for _ in range(12):
            def back(last: int | None = last) -> tuple[int, float] | None:
                got = self.state.acked.get((sup, name))
                return got if got is not None and got[0] != last else None

            deadline = time.monotonic() + 15
            while back() is None and name not in self.state.disabled and time.monotonic() < deadline:
                self.sleep(0.01)
            got = back()
            if name in self.state.disabled or got is None:
                return
            last = got[0]
            try:
                ct = psutil.Process(last).create_time()
                send(self.soak, last, ct, signal.SIGKILL)
            except (ProcessLookupError, psutil.Error):
                continue
            self.tally.kills["crash_loop"] += 1

    # -- the root -------------------------------------------------------------
    def kill_daemon(self) -> None:
        t0 = time.monotonic()
        want_se = self.rng.random() < 0.5
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            phases = list(self.state.inflight.values())
            if phases and (not want_se or any(p.idempotency != "idempotent" for p in phases)):
                break
            self.sleep(0.02)
        self.sleep(self.rng.uniform(0.0, 0.3))  # somewhere in the phase
        self.tally.timing["daemon_kill.aim"] += time.monotonic() - t0
        root = int(self._status_retrying()["pid"])
        try:
            ct = psutil.Process(root).create_time()
        except psutil.Error:
            return  # gone since it answered: the next try finds out (a daemon that died by itself stops the soak)
        below = descendants(root)
        side_effecting = any(p.idempotency != "idempotent" for p in self.state.inflight.values())
        send(self.soak, root, ct, signal.SIGKILL)
        died = time.time()
        self.tally.daemon_kills += 1
        self.tally.side_effecting_kills += side_effecting
        self.tally.root_deaths[f"daemon/root:{root}"] = died
        self.tally.lifetimes.append((self.up_since, died))
        if self.client is not None:
            self.client.close()
            self.client = None
        self._status = None
        # the whole tree dies with its root
        end = time.monotonic() + ORPHAN_GRACE
        while time.monotonic() < end and any(alive(p, c) for p, c in below.items()):
            self.sleep(0.05)
        self.watches.check_gone("the daemon's SIGKILL", below)
        self.state.feed(self.follower.after_crash())
        t1 = time.monotonic()
        try:
            start_daemon(self.soak)
        except RuntimeError as exc:  # a start that timed out on a loaded machine: once more
            print(f"soak: {exc}; starting again", file=sys.stderr, flush=True)
            start_daemon(self.soak)
        self.tally.timing["daemon_kill.start"] += time.monotonic() - t1
        self.up_since = time.time()
        self.sacrificed.clear()
        self.on_restart()

    def _status_retrying(self) -> dict[str, Any]:
        for _ in range(30):
            try:
                return self.status()
            except AnimusError:
                self.sleep(1.0)
        return self.status()

    def close_lifetime(self, when: float) -> None:
        self.tally.lifetimes.append((self.up_since, when))

