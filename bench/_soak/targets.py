"""Which processes the chaos can hit, by kind, and how a signal reaches exactly one of them.

The tree comes from ``daemon/status`` (supervisors, plugin workers, runners,
each acknowledged); what it does not list comes from psutil: each
supervisor's zygote, the provider CLIs under a provider plugin, a command
phase's shell under its runner and that shell's own children. A signal goes
through a pidfd opened after checking the process's create time and its
``SOAK_MARKER``: never to a reused pid, never to anyone else's process.
"""

from __future__ import annotations

import os
import random
import signal
from dataclasses import dataclass
from typing import Any

import psutil

from _soak.events import LiveState
from _soak.setup import SIDE_EFFECTING, STANDINS, SoakEnv

PLUGIN_SUPERVISORS = ("providers", "subjects", "triggers", "transports")
RISK_LIMIT = 3  # a child restarted this many times in a row is left alone until it is healthy
KINDS = ("worker", "runner", "runner_side_effecting", "provider_cli", "command", "command_grandchild", "zygote",
         "supervisor")


@dataclass(frozen=True)
class Victim:
    kind: str
    pid: int
    create_time: float
    label: str
    side_effecting: bool = False  # a side-effecting (or unannotated) phase runs in what dies
    runner: int = 0  # the workflow runner it belongs to (a runner, its command and their children)
    detached_children: bool = False  # its children live on without it (the root's zygote): none must die


def _ct(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class Targets:
    def __init__(self, soak: SoakEnv, state: LiveState, rng: random.Random) -> None:
        self.soak = soak
        self.state = state
        self.rng = rng

    # -- the tree as the daemon reports it ------------------------------------
    def snapshot(self, status: dict[str, Any]) -> dict[str, list[Victim]]:
        """Every process the chaos could hit now, by kind."""
        sups = {s["name"]: s for s in status["tree"]}
        procs: dict[int, tuple[int, list[str]]] = {}
        try:
            for p in psutil.Process(int(status["pid"])).children(recursive=True):
                try:
                    procs[p.pid] = (p.ppid(), p.cmdline())
                except psutil.Error:
                    continue
        except psutil.Error:
            return {}
        kids: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            kids.setdefault(ppid, []).append(pid)
        out: dict[str, list[Victim]] = {k: [] for k in KINDS}
        for name in PLUGIN_SUPERVISORS:
            sup = sups.get(name) or {}
            for child in sup.get("children", []):
                if self._ripe(name, child):
                    out["worker"].append(self._victim("worker", child["pid"], f"{sup.get('role') or name}:{child['name']}"))
            for cli in (kids.get(c.get("pid") or -1, []) for c in sup.get("children", []) if name == "providers"):
                out["provider_cli"].extend(self._victim("provider_cli", p, "cli") for p in cli
                                           if str(STANDINS) in " ".join(procs[p][1]))
        # one supervisor, drawn among all of them, and only if killing it spends no budget now
        # (drawn among the safe ones, the workflows supervisor, always safe, would be hit most)
        name = self.rng.choice(sorted(sups))
        sup = sups[name]
        if sup.get("pid") and sup.get("state") == "running":
            se = self._side_effecting_under(sup)
            if self._subtree_safe(sup):
                out["supervisor"].append(self._victim("supervisor", sup["pid"], name, se))
            if self._subtree_safe(sup, own=False):
                out["zygote"].extend(self._victim("zygote", p, f"zygote:{name}", se) for p in kids.get(sup["pid"], [])
                                     if "animus.supervision.zygote" in " ".join(procs[p][1]))
        # the root's zygote: the child supervisors are forked from it detached, so killing it must
        # cost nothing (no restart, no budget); a later restart of a supervisor gets a new one
        root = int(status["pid"])
        out["zygote"].extend(Victim("zygote", p, _ct(p) or 0.0, "zygote:root", detached_children=True)
                             for p in kids.get(root, []) if "animus.supervision.zygote" in " ".join(procs[p][1]))
        for child in (sups.get("workflows") or {}).get("children", []):
            pid = child.get("pid") or -1
            phase = self.state.inflight.get(pid)
            if child.get("state") != "running" or phase is None:
                continue
            se = phase.idempotency in SIDE_EFFECTING
            out["runner_side_effecting" if se else "runner"].append(
                self._victim("runner", pid, f"runner:{phase.phase}", se, pid))
            for leader in kids.get(pid, []):  # the command (bash, or what bash exec'd as its last command)
                out["command"].append(self._victim("command", leader, f"command:{phase.phase}", se, pid))
                out["command_grandchild"].extend(
                    self._victim("command_grandchild", g, f"grandchild:{phase.phase}", se, pid)
                    for g in kids.get(leader, []))
        return {k: [v for v in vs if v.create_time > 0] for k, vs in out.items()}

    def _victim(self, kind: str, pid: int, label: str, side_effecting: bool = False, runner: int = 0) -> Victim:
        return Victim(kind, pid, _ct(pid) or 0.0, label, side_effecting, runner)

    def side_effecting_now(self, victim: Victim) -> bool:
        """Whether a side-effecting phase runs in what this kill takes, as of now (the snapshot
        may be a fraction of a second old)."""
        if not victim.runner:
            return victim.side_effecting  # a supervisor (or its zygote): as seen with the tree
        phase = self.state.inflight.get(victim.runner)
        return phase is not None and phase.idempotency in SIDE_EFFECTING

    def _ripe(self, supervisor: str, child: dict[str, Any]) -> bool:
        acked = self.state.acked.get((supervisor, child["name"]))
        return (child.get("state") == "running" and bool(child.get("pid")) and acked is not None
                and acked[0] == child["pid"] and not self.state.risky(supervisor, child["name"], RISK_LIMIT))

    def _subtree_safe(self, sup: dict[str, Any], own: bool = True) -> bool:
        """Killing this supervisor (or its zygote) must not spend anyone's budget."""
        if own and self.state.risky("root", sup["name"], RISK_LIMIT):
            return False
        if sup["name"] == "workflows":
            return True  # runners are temporary children: no budget
        return all(self._ripe(sup["name"], c) for c in sup.get("children", [])
                   if c.get("state") in ("running", "starting"))

    def _side_effecting_under(self, sup: dict[str, Any]) -> bool:
        if sup["name"] != "workflows":
            return False
        return any((p := self.state.inflight.get(c.get("pid") or -1)) is not None
                   and p.idempotency in SIDE_EFFECTING for c in sup.get("children", []))



def descendants(pid: int) -> dict[int, float]:
    """Every descendant of ``pid`` now, with its create time (what must die with it)."""
    out = {}
    try:
        for p in psutil.Process(pid).children(recursive=True):
            try:
                out[p.pid] = p.create_time()
            except psutil.Error:
                continue
    except psutil.Error:
        pass
    return out


def send(soak: SoakEnv, pid: int, create_time: float, sig: int) -> int | None:
    """Signal this very process (pid and create time, with our marker); return a pidfd kept
    open for a later SIGCONT (SIGSTOP only), or None. Raises ProcessLookupError if it is gone."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.01 or not soak.has_marker(proc.environ()):
            raise ProcessLookupError(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise ProcessLookupError(pid)
    except psutil.Error:
        raise ProcessLookupError(pid) from None
    fd = os.pidfd_open(pid)
    try:
        try:
            reused = abs(psutil.Process(pid).create_time() - create_time) > 0.01  # between the checks
        except psutil.Error:
            reused = True  # gone (and reaped) since: the pidfd may be another's now
        if reused:
            raise ProcessLookupError(pid)
        signal.pidfd_send_signal(fd, sig)
    except BaseException:
        os.close(fd)
        raise
    if sig == signal.SIGSTOP:
        return fd
    os.close(fd)
    return None
