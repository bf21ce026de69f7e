"""What the chaos owes later: the SIGCONT of each frozen process, and the orphan check of each kill.

A frozen process is thawed through the pidfd its SIGSTOP went through (never
a reused pid). Whatever a killed process had below it must be gone
``ORPHAN_GRACE`` seconds later (it died with its owner, or was reaped); a
survivor is an orphan: it is recorded, then killed so that it cannot be
counted twice.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

import psutil

from _soak.setup import SoakEnv
from _soak.targets import send

ORPHAN_GRACE = 10.0


def alive(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass
class Watches:
    soak: SoakEnv
    orphans: list[str] = field(default_factory=list)
    conts: list[tuple[float, int, str]] = field(default_factory=list)  # SIGCONT due, pidfd, label
    checks: list[tuple[float, str, dict[int, float]]] = field(default_factory=list)  # due, victim, must be gone

    def thaw_later(self, hold: float, fd: int, label: str) -> None:
        self.conts.append((time.monotonic() + hold, fd, label))

    def check_later(self, label: str, below: dict[int, float]) -> None:
        if below:
            self.checks.append((time.monotonic() + ORPHAN_GRACE, label, below))

    def due(self) -> None:
        """Thaw and check what is due now."""
        now = time.monotonic()
        for item in [c for c in self.conts if c[0] <= now]:
            self.conts.remove(item)
            _cont(item[1])
        for check in [w for w in self.checks if w[0] <= now]:
            self.checks.remove(check)
            self.check_gone(check[1], check[2])

    def thaw_all(self) -> None:
        for _, fd, _ in self.conts:
            _cont(fd)
        self.conts.clear()

    def finish(self) -> None:
        """The orphan checks still due (the end of the soak usually outlasts their grace)."""
        while self.checks:
            time.sleep(max(0.0, min(w[0] for w in self.checks) - time.monotonic()))
            self.due()

    def check_gone(self, label: str, pids: dict[int, float]) -> None:
        for pid, ct in pids.items():
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - ct) > 0.01 or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                cmd = " ".join(proc.cmdline())[:160]
            except psutil.Error:
                continue
            self.orphans.append(f"pid {pid} ({cmd}) outlived {label} by {ORPHAN_GRACE:g}s")
            try:
                send(self.soak, pid, ct, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _cont(fd: int) -> None:
    try:
        signal.pidfd_send_signal(fd, signal.SIGCONT)
    except ProcessLookupError:
        pass
    os.close(fd)
