"""Two Ray nodes on one machine, each in a network namespace of its own: for tests and benchmarks.

Why namespaces and not two loopback addresses: Ray accepts a head on
127.0.0.2 and a node on 127.0.0.3, but a node whose IP is not exactly
127.0.0.1 binds its C++ servers (GCS, raylet, object manager, core workers)
on ``::`` and its agents on ``0.0.0.0`` — every interface of the machine
(Ray 2.60, seen with psutil). Inside a namespace that holds only ``lo`` and
one end of a veth pair whose other end is in the other namespace, "every
interface" is loopback and the test link: nothing there is reachable from
the machine's network, and no packet can leave (no route, no other link).

    root namespace: the test, the CLI ──(ipc: socket files)──┐
    <name>-a: 198.18.0.2  daemon + Ray head  ◄── veth ──►  <name>-b: 198.18.0.3  Ray worker node

Each node gets a HOME of its own, so a ``work_dir`` under ``~`` is a
different disk per node, as on two machines. Every process of a node is
known without bookkeeping: the processes in its namespace (``ip netns
pids``). :meth:`NamespaceCluster.kill_node` kills them all at once, the way a
machine dies. :func:`exposure` is the check that nothing listens or talks
beyond the namespace's own addresses; its input comes from psutil run
*inside* the namespace (``python -m animus.workflow.remote.netns_sockets``):
psutil reads ``/proc/net``, which is the reader's namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from animus.workflow.remote.netns_sockets import exposure
from animus.workflow.remote.ray_cluster import OBJECT_STORE_BYTES, SINGLE_MACHINE_ENV

__all__ = ["HEAD_IP", "NODE_IP", "NamespaceCluster", "netns_problem", "ns_pids", "sweep_stale"]

HEAD_IP, NODE_IP = "198.18.0.2", "198.18.0.3"  # RFC 2544's benchmarking range: never routed
HEAD_DEV, NODE_DEV = "animus0", "animus1"  # the two ends of the veth pair
GCS_PORT = 6379
PREFIX = "animus-t"  # namespaces are named animus-t<pid of their owner>-<hex>-a|b
TEMP_ROOT = "/tmp"  # short: Ray's unix socket paths under it must stay within 107 bytes


def _ip(*args: str, check: bool = True) -> str:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


def netns_problem() -> str | None:
    """Why this process cannot make network namespaces (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    probe = f"{PREFIX}probe-{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (RuntimeError, OSError) as exc:
        return f"cannot add a network namespace here: {exc}"
    _ip("netns", "del", probe, check=False)
    return None


def ns_pids(ns: str) -> list[int]:
    return [int(p) for p in _ip("netns", "pids", ns, check=False).split()]


def _signal_all(pids: list[int], sig: int) -> list[int]:
    sent = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            sent.append(pid)
        except ProcessLookupError:
            pass
    return sent


def kill_namespace(ns: str, timeout: float = 15.0) -> list[int]:
    """Every process in ``ns`` dies at one instant, as with a machine: all are frozen (SIGSTOP, so
    none can act on another's death, say a raylet reporting its workers gone), then SIGKILLed,
    until none is left. Return the pids killed."""
    frozen: set[int] = set()
    while pids := [p for p in ns_pids(ns) if p != os.getpid() and p not in frozen]:
        frozen.update(_signal_all(pids, signal.SIGSTOP))  # a process forked meanwhile is caught next round
    killed = set(_signal_all(sorted(frozen), signal.SIGKILL))
    deadline = time.monotonic() + timeout
    while pids := [p for p in ns_pids(ns) if p != os.getpid()]:
        killed.update(_signal_all(pids, signal.SIGKILL))
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of namespace {ns} survive SIGKILL: {pids}")
        time.sleep(0.05)  # a killed process is listed until its parent reaps it
    return sorted(killed)


def _orphaned(name: str) -> bool:
    """Named by :class:`NamespaceCluster` for an owner process that is gone."""
    owner = name[len(PREFIX):].split("-", 1)[0]
    return name.startswith(PREFIX) and owner.isdigit() and not Path(f"/proc/{owner}").exists()


def sweep_stale() -> None:
    """Remove the namespaces, and their processes and files, that an earlier, killed test session left."""
    for line in _ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if _orphaned(name):
            kill_namespace(name)
            _ip("netns", "del", name, check=False)
    for path in Path(TEMP_ROOT).glob(f"{PREFIX}*"):
        if _orphaned(path.name):
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class NamespaceCluster:
    """A Ray head in namespace ``<name>-a`` and one worker node in ``<name>-b``, owned by this object."""

    head_cpus: int = 1
    node_cpus: int = 2
    head_resources: dict[str, float] = field(default_factory=dict)
    node_resources: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    name: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}")
    temp_dir: Path = Path()  # default: /tmp/<name>-<random>, swept like the namespaces once its owner is gone
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.temp_dir == Path():
            self.temp_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=TEMP_ROOT))

    @property
    def head_ns(self) -> str:
        return f"{self.name}-a"

    @property
    def node_ns(self) -> str:
        return f"{self.name}-b"

    @property
    def address(self) -> str:
        return f"{HEAD_IP}:{GCS_PORT}"

    def home(self, ns: str) -> Path:
        """The node's HOME (``~`` in ``runners.ray.work_dir``): a disk of its own."""
        return self.temp_dir / ("head-home" if ns == self.head_ns else "node-home")

    def exec_argv(self, ns: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def create(self) -> None:
        """Both namespaces, loopback up, joined by a veth pair that carries only the two test addresses."""
        sweep_stale()
        for ns in (self.head_ns, self.node_ns):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", HEAD_DEV, "netns", self.head_ns, "type", "veth", "peer", "name", NODE_DEV,
            "netns", self.node_ns)
        for ns, dev, ip in ((self.head_ns, HEAD_DEV, HEAD_IP), (self.node_ns, NODE_DEV, NODE_IP)):
            _ip("-n", ns, "link", "set", dev, "addrgenmode", "none")  # no IPv6 link-local address
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")

    def ray_env(self, ns: str) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if k not in ("RAY_ADDRESS", SINGLE_MACHINE_ENV)}
        # Ray declares a silent node dead after health_check_period_ms x failure_threshold (5): ~5 s here
        return env | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_health_check_period_ms": "1000", "HOME": str(self.home(ns))}

    def _ray(self, ns: str, args: list[str], log: str) -> None:
        self.home(ns).mkdir(parents=True, exist_ok=True)
        with open(self.temp_dir / log, "ab") as out:
            argv = [sys.executable, "-m", "ray.scripts.scripts", "start", *args, "--block", "--disable-usage-stats",
                    f"--object-store-memory={OBJECT_STORE_BYTES}"]
            self.procs.append(subprocess.Popen(self.exec_argv(ns, argv), env=self.ray_env(ns), stdin=subprocess.DEVNULL,
                                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True))

    def start(self, timeout: float = 180.0) -> list[dict[str, Any]]:
        """Namespaces, head, worker node; return Ray's view once both nodes are alive."""
        self.create()
        self._ray(self.head_ns, ["--head", f"--node-ip-address={HEAD_IP}", f"--port={GCS_PORT}",
                                 "--include-dashboard=false", f"--temp-dir={self.temp_dir / 'ray'}",
                                 f"--num-cpus={self.head_cpus}", f"--resources={json.dumps(self.head_resources)}"],
                  "head.log")
        self.start_node()
        return self.wait_nodes(2, timeout)

    def start_node(self) -> None:
        """(Re)start the worker node, in its namespace (its link back up after :meth:`kill_node`)."""
        _ip("-n", self.node_ns, "link", "set", NODE_DEV, "up")
        self._ray(self.node_ns, [f"--address={self.address}", f"--node-ip-address={NODE_IP}",
                                 f"--num-cpus={self.node_cpus}", f"--resources={json.dumps(self.node_resources)}"],
                  "node.log")

    def nodes(self, count: int = 0, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Ray's view of the nodes (asked from the head's namespace), once ``count`` are alive."""
        argv = [sys.executable, "-m", "animus.workflow.remote.ray_netns", "nodes", self.address, str(count),
                str(timeout)]
        try:
            out = subprocess.run(self.exec_argv(self.head_ns, argv), env=self.ray_env(self.head_ns),
                                 capture_output=True, text=True, timeout=timeout + 90, check=False)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"the Ray cluster at {self.address} did not answer") from None
        if out.returncode != 0:
            raise RuntimeError(f"cannot reach the Ray cluster at {self.address}: {out.stderr[-2000:]}")
        return list(json.loads(out.stdout.strip().splitlines()[-1]))

    def wait_nodes(self, count: int, timeout: float = 180.0) -> list[dict[str, Any]]:
        nodes = self.nodes(count, timeout)
        if sum(1 for n in nodes if n["alive"]) < count:
            raise TimeoutError(f"fewer than {count} Ray nodes alive after {timeout:g}s (logs: {self.temp_dir})")
        return nodes

    def report(self, ns: str) -> dict[str, Any]:
        argv = [sys.executable, "-m", "animus.workflow.remote.netns_sockets"]
        out = subprocess.run(self.exec_argv(ns, argv), capture_output=True, text=True, timeout=60, check=True)
        return dict(json.loads(out.stdout))

    def exposure(self) -> list[str]:
        """What, in either namespace, listens or talks beyond loopback and the two test addresses."""
        return [f"{ns}: {line}" for ns in (self.head_ns, self.node_ns)
                for line in exposure(self.report(ns), {HEAD_IP, NODE_IP})]

    def kill_node(self) -> list[int]:
        """The worker node dies whole, the way a machine does: its link goes down first, so that
        nothing it sends afterwards reaches the head (no FIN, no reset: its peers find out by
        silence), then every process in its namespace is SIGKILLed. Return the pids killed."""
        _ip("-n", self.node_ns, "link", "set", NODE_DEV, "down")
        return kill_namespace(self.node_ns)

    def stop(self) -> None:
        """Every process of both nodes killed, both namespaces deleted, the files removed: all of it
        tried even when a step fails (the first failure is raised at the end)."""
        errors: list[BaseException] = []
        for ns in (self.node_ns, self.head_ns):
            try:
                kill_namespace(ns)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                errors.append(exc)
            _ip("netns", "del", ns, check=False)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired as exc:
                errors.append(exc)
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        if errors:
            raise errors[0]


def _nodes(address: str, count: int, timeout: float) -> list[dict[str, Any]]:
    import logging

    import ray

    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    end = time.monotonic() + timeout
    while True:
        nodes = [{"node_id": n["NodeID"], "ip": n["NodeManagerAddress"], "alive": n["Alive"],
                  "resources": n["Resources"]} for n in ray.nodes()]  # type: ignore[no-untyped-call]
        if sum(n["alive"] for n in nodes) >= count or time.monotonic() > end:
            return nodes
        time.sleep(0.2)


if __name__ == "__main__" and sys.argv[1] == "nodes":
    print(json.dumps(_nodes(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))))
