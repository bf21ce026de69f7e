"""A Ray cluster on this machine's loopback only: for tests, benchmarks and trying things out.

Ray picks "the machine's address" for its node IP, and turns a
``--node-ip-address`` of ``127.0.0.1`` back into that address, so a plain
``ray start --head --node-ip-address=127.0.0.1`` still listens on the
machine's non-loopback address. What pins every component to loopback
(Ray 2.9 – 2.60, checked with psutil by :func:`non_loopback_sockets`):

- the head runs with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (Ray's
  single-machine mode, the default on macOS/Windows): the node IP is then
  ``127.0.0.1``, and Ray's C++ servers (GCS, raylet, object manager, core
  workers) bind ``127.0.0.1`` instead of every interface when the node IP is
  exactly that; the Python agents bind the node IP;
- every driver that connects (the daemon's workflows supervisor) runs with
  the same variable: Ray rewrites a loopback ``address`` to the machine's
  address otherwise (``animus.workflow.remote.ray_backend`` sets it when the
  configured address is loopback);
- so the cluster has one node: ``ray start`` refuses to join a second node
  in single-machine mode, and without that mode a second node on this
  machine would reach the head through the machine's address;
- the dashboard is off, and every fixed default port (client server 10001,
  agent 52365) is replaced by a free loopback port, so two clusters on one
  machine do not collide.

Every process of the cluster is owned: each ``ray start --block`` is our
child in a process group of its own; :meth:`stop` kills the groups and every
descendant seen (Ray's workers start sessions of their own).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from animus.process.handle import signal_group

__all__ = ["SINGLE_MACHINE_ENV", "LoopbackCluster", "is_loopback", "non_loopback_sockets", "ray_processes"]

LOOPBACK = "127.0.0.1"
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's floor is 75 MiB; the default is 30 % of RAM


def is_loopback(ip: str) -> bool:
    if not ip:
        return True  # an unbound/unconnected side
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def ray_processes(roots: list[int]) -> list[psutil.Process]:
    """The given processes, their process groups and all their descendants."""
    groups = set()
    found: dict[int, psutil.Process] = {}
    for pid in roots:
        try:
            proc = psutil.Process(pid)
            groups.add(os.getpgid(pid))
            found[pid] = proc
            for child in proc.children(recursive=True):
                found[child.pid] = child
        except (psutil.Error, ProcessLookupError):
            continue
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) in groups:
                found.setdefault(proc.pid, proc)
        except (psutil.Error, ProcessLookupError):
            continue
    return list(found.values())


def non_loopback_sockets(pids: list[int]) -> list[str]:
    """Every inet socket of these processes (and their groups and descendants)
    whose local or remote address is not loopback, one line each."""
    bad = []
    for proc in ray_processes(pids):
        try:
            conns = proc.net_connections(kind="inet")
            name = proc.name()
        except psutil.Error:
            continue
        for conn in conns:
            local = conn.laddr.ip if conn.laddr else ""
            remote = conn.raddr.ip if conn.raddr else ""
            if not (is_loopback(local) and is_loopback(remote)):
                bad.append(f"pid {proc.pid} ({name}) {conn.status} {conn.laddr} -> {conn.raddr or '-'}")
    return bad


@dataclass
class LoopbackCluster:
    """``ray start --head`` pinned to 127.0.0.1: one node, owned by this object."""

    num_cpus: int = 1
    resources: dict[str, float] = field(default_factory=dict)
    temp_dir: Path | None = None
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    port: int = 0
    keep_logs: bool = False  # else a temp_dir this object made is removed on stop
    made_temp: bool = field(default=False, init=False)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    seen: dict[int, float] = field(default_factory=dict)  # pid -> create time

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _ray(self, args: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        assert self.temp_dir is not None
        with open(self.temp_dir / log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", *args, "--block",
                                     "--disable-usage-stats", f"--temp-dir={self.temp_dir}",
                                     f"--object-store-memory={OBJECT_STORE_BYTES}"],
                                    env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def ray_env(self) -> dict[str, str]:
        """The environment of the head and of every driver that connects to it."""
        env = {k: v for k, v in self.env.items() if k != "RAY_ADDRESS"}
        return env | {"RAY_USAGE_STATS_ENABLED": "0", SINGLE_MACHINE_ENV: "0"}

    @staticmethod
    def pinning_problem(env: dict[str, str] | None = None) -> str | None:
        """Why Ray could not be pinned to loopback here (None: it can). Asks the
        installed Ray, in a subprocess and without starting anything, which
        address a node would take with the settings above."""
        probe = ("import sys\n"
                 "from ray._private import ray_constants, services\n"
                 "print(ray_constants.ENABLE_RAY_CLUSTER, services.resolve_ip_for_localhost('127.0.0.1'))\n")
        run_env = dict(env or os.environ) | {"RAY_USAGE_STATS_ENABLED": "0", SINGLE_MACHINE_ENV: "0"}
        try:
            out = subprocess.run([sys.executable, "-c", probe], env=run_env, capture_output=True, text=True,
                                 timeout=60, check=False)
        except subprocess.TimeoutExpired:
            return "asking Ray for its node address timed out"
        if out.returncode != 0:
            return f"cannot ask Ray for its node address: {out.stderr.strip()[-300:]}"
        if out.stdout.split() != ["False", LOOPBACK]:
            return f"this Ray ignores {SINGLE_MACHINE_ENV}=0 (it answered {out.stdout.strip()!r})"
        return None

    def start_head(self) -> None:
        # Unix socket paths live under temp_dir: keep it short (sun_path is 108 bytes).
        if self.temp_dir is None:
            self.temp_dir = Path(tempfile.mkdtemp(prefix="animus-ray-", dir="/tmp"))
            self.made_temp = True
        self.port = self.port or free_port()
        self._ray(["--head", f"--node-ip-address={LOOPBACK}", f"--port={self.port}",
                   "--include-dashboard=false", f"--ray-client-server-port={free_port()}",
                   f"--dashboard-agent-listen-port={free_port()}", f"--num-cpus={self.num_cpus}",
                   f"--resources={json.dumps(self.resources)}"], self.ray_env(), "head.log")

    def wait_nodes(self, count: int, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Wait until ``count`` nodes are alive; return Ray's view of the nodes."""
        script = ("import json,sys,time,ray\n"
                  "ray.init(address=sys.argv[1],logging_level='ERROR',log_to_driver=False)\n"
                  "end=time.monotonic()+float(sys.argv[3])\n"
                  "while True:\n"
                  " nodes=[{'node_id':n['NodeID'],'ip':n['NodeManagerAddress'],'alive':n['Alive'],"
                  "'resources':n['Resources']} for n in ray.nodes()]\n"
                  " if sum(n['alive'] for n in nodes)>=int(sys.argv[2]) or time.monotonic()>end: break\n"
                  " time.sleep(0.1)\n"
                  "print(json.dumps(nodes))\n")
        deadline = time.monotonic() + timeout
        self._wait_port(deadline)
        try:
            out = subprocess.run([sys.executable, "-c", script, self.address, str(count),
                                  str(max(1.0, deadline - time.monotonic()))], env=self.ray_env(),
                                 capture_output=True, text=True, timeout=max(5.0, deadline - time.monotonic() + 10),
                                 check=False)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"Ray cluster at {self.address} did not answer in {timeout}s") from None
        if out.returncode != 0:
            raise RuntimeError(f"cannot reach the Ray cluster at {self.address}: {out.stderr[-2000:]}")
        nodes: list[dict[str, Any]] = json.loads(out.stdout.strip().splitlines()[-1])
        if sum(1 for n in nodes if n["alive"]) < count:
            raise TimeoutError(f"Ray cluster at {self.address} has fewer than {count} nodes after {timeout}s")
        self.remember()
        return nodes

    def _wait_port(self, deadline: float) -> None:
        while True:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"ray start exited with {proc.returncode}: see {self.temp_dir}")
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Ray's GCS did not open {self.address}") from None
                time.sleep(0.1)

    def remember(self) -> None:
        """Record every process of the cluster now (for stop, after their parents die)."""
        for proc in ray_processes(self.pids()):
            try:
                self.seen[proc.pid] = proc.create_time()
            except psutil.Error:
                continue

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        self.remember()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                signal_group(proc.pid, signal.SIGKILL)
        victims = []
        for pid, created in self.seen.items():
            try:
                victim = psutil.Process(pid)
                if abs(victim.create_time() - created) < 0.01:  # still the process we saw, not a reused pid
                    victim.kill()
                    victims.append(victim)
            except psutil.Error:
                continue
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        psutil.wait_procs(victims, timeout=10)
        if self.made_temp and not self.keep_logs and self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
