"""How long a SIGKILLed worker is gone, against how long the same worker takes to start.

Measured in the same run, interleaved (so machine load hits both alike):

* **restart**: a real daemon (started with the CLI in a temp ANIMUS_HOME) runs
  the probe plugin; we SIGKILL the worker and time until its replacement
  answers ``$/ping`` over the control socket (``plugin/call``). The moment the
  replacement acknowledged its start comes from the bus (``child_started``, a
  SUB socket synced with ``bus/sync``), so the measurement does not hammer the
  daemon with polls; then one ping, whose reply ends the clock.
* **cold**: the same worker command, with the environment the daemon gives it
  (read from the providers supervisor's compiled config), spawned the same way
  (``process.spawn``) against a minimal ROUTER of our own: ``$/ready`` →
  ``initialize`` → ``initialized`` → first ``$/ping`` reply.
* **floor**: the same worker forked from a bare process that preloaded what the
  daemon's zygote preloads (``bench/_forker.py``: no supervisor, no policy),
  against the same ROUTER: the physical floor of any restart.

Prints median and p95 of the three, both ratios (targets: restart <= 2x the
floor, <= 1.3x a cold spawn), and a breakdown of the restart (death noticed,
restart decided, replacement acknowledged) from the event timestamps.

Usage: ``python bench/restart_latency.py [--runs N]``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
import zmq

from animus.bus.codec import pack, unpack
from animus.bus.rpc import ControlClient
from animus.state.scope import Scope
from animus.process import handle as process
from animus.plugin_runtime import protocol as p

ANIMUS = [sys.executable, "-m", "animus.cli.main"]
PLUGIN = "probe"
HEALTHY_WINDOW = 0.3  # kill only after this much uptime, so the restart budget resets


def cli(env: dict[str, str], project: Path, *args: str) -> str:
    proc = subprocess.run([*ANIMUS, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"animus {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def install_probe(env: dict[str, str], project: Path, home: Path, via: str) -> None:
    """The probe as an installed plugin: a first-party Python command (``{python} -m
    animus.testing_worker``: the daemon forks it from its zygote), or behind a shell
    wrapper, as the test suite installs it (an arbitrary executable: exec'd)."""
    folder = home.parent / "probe-src"
    folder.mkdir(parents=True)
    command = ["{python}", "-m", "animus.testing_worker"]
    if via == "exec":
        wrapper = folder / "run.sh"
        wrapper.write_text(f"#!/bin/sh\nexport PROBE_MODE='ok'\nexec \"{sys.executable}\" -m animus.testing_worker \"$@\"\n")
        wrapper.chmod(0o755)
        command = [str(wrapper)]
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump({
        "name": PLUGIN, "role": "provider", "version": "0.0.1", "protocol": "1.0.0",
        "description": "probe for the restart benchmark", "command": command}))
    cli(env, project, "plugin", "install", str(folder), "--force")


@contextmanager
def daemon(via: str) -> Iterator[tuple[dict[str, str], Path, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="animus-bench-restart-"))
    home, project = tmp / "home", tmp / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")}
    env.update({"ANIMUS_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    (project / ".animus").mkdir()
    (project / ".animus" / "config.yaml").write_text(yaml.safe_dump({
        "restart": {"max_restarts": 5, "initial": 0.05, "factor": 2.0, "cap": 0.4,
                    "healthy_window": HEALTHY_WINDOW}}))
    try:
        install_probe(env, project, home, via)
        info = json.loads(cli(env, project, "daemon", "start", "--skip-preflight", "--json").splitlines()[-1])
        try:
            yield env, project, Path(info["state_root"])
        finally:
            cli(env, project, "daemon", "stop", "--shutdown-timeout-secs", "20")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Bus:
    """A SUB on ``bus.out``, proven live with a ``bus/sync`` marker before use."""

    def __init__(self, endpoint: str, control: ControlClient) -> None:
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        for topic in (b"supervisor", b"bus"):
            self.sock.setsockopt(zmq.SUBSCRIBE, topic)
        self.sock.connect(endpoint)
        nonce = uuid.uuid4().hex
        deadline = time.monotonic() + 10
        while not self.wait(lambda e: e["kind"] == "stream_sync" and e["data"].get("nonce") == nonce, 0.1):
            if time.monotonic() > deadline:
                raise SystemExit("could not subscribe to the bus")
            control.call("bus/sync", {"nonce": nonce})

    def wait(self, match: Any, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not self.sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                return None
            _topic, raw = self.sock.recv_multipart()
            event = unpack(raw)
            if match(event):
                return event  # type: ignore[no-any-return]
        return None

    def close(self) -> None:
        self.sock.close(linger=0)


def restart_once(control: ControlClient, bus: Bus, old_pid: int) -> tuple[float, dict[str, float], int]:
    """SIGKILL the worker; return (seconds until its replacement answered a ping, breakdown, new pid)."""
    wall0 = time.time()
    t0 = time.perf_counter()
    os.kill(old_pid, signal.SIGKILL)
    marks: dict[str, float] = {}

    def match(event: dict[str, Any]) -> bool:
        data = event["data"]
        if data.get("child") != PLUGIN:
            return False
        if event["kind"] in ("child_exited", "child_restarting"):
            marks.setdefault(event["kind"], event["ts"] - wall0)
        return bool(event["kind"] == "child_started" and data["pid"] != old_pid)

    started = bus.wait(match, 10)
    if started is None:
        raise SystemExit(f"no replacement for pid {old_pid} within 10 s")
    reply = control.call("plugin/call", {"name": PLUGIN, "method": "$/ping", "timeout": 5})
    took = time.perf_counter() - t0
    marks["child_started"] = started["ts"] - wall0
    if reply["result"]["pid"] != started["data"]["pid"]:
        raise SystemExit(f"ping answered by {reply['result']['pid']}, not the replacement")
    return took, marks, int(started["data"]["pid"])


class BareHost:
    """A minimal plugin host: one ROUTER, the handshake, one ping."""

    def __init__(self, workdir: Path) -> None:
        self.endpoint = f"ipc://{workdir / 'bare-host'}"
        self.sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)

    def recv(self, timeout: float = 10) -> tuple[bytes, dict[str, Any]]:
        if not self.sock.poll(int(timeout * 1000), zmq.POLLIN):
            raise SystemExit("bare worker did not speak within 10 s")
        ident, raw = self.sock.recv_multipart()
        return ident, unpack(raw)

    def spawn_to_ping(self, argv: list[str], env: dict[str, str], cwd: str) -> float:
        env = {**env, p.ENV_ENDPOINT: self.endpoint, p.ENV_ID: PLUGIN}
        t0 = time.perf_counter()
        child = process.spawn(argv, env, cwd)  # sets ANIMUS_PARENT_PID, as for the daemon's workers
        try:
            return self._handshake(t0, child.pid)
        finally:
            child.popen.terminate()
            child.popen.wait(10)
            if child.popen.stderr is not None:
                child.popen.stderr.close()
            if child.pidfd is not None:
                os.close(child.pidfd)

    def fork_to_ping(self, forker: subprocess.Popen[str], module: str, env: dict[str, str], cwd: str) -> float:
        """The floor: a preloaded process forks the worker; time to its first ping reply."""
        env = {**env, p.ENV_ENDPOINT: self.endpoint, p.ENV_ID: PLUGIN, process.PARENT_PID_ENV: str(forker.pid)}
        assert forker.stdin is not None and forker.stdout is not None
        t0 = time.perf_counter()
        forker.stdin.write(json.dumps({"module": module, "env": env, "cwd": cwd}) + "\n")
        forker.stdin.flush()
        pid = int(forker.stdout.readline())
        try:
            return self._handshake(t0, pid)
        finally:
            os.kill(pid, signal.SIGTERM)

    def _handshake(self, t0: float, pid: int) -> float:
        ident, ready = self.recv()
        assert ready.get("method") == "$/ready", ready
        self.sock.send_multipart([ident, pack(p.request(1, "initialize", {
            "protocol_version": p.PROTOCOL_VERSION, "host_info": {"name": "bench", "version": "0"},
            "capabilities": {}, "config": {}}))])
        _, init = self.recv()
        assert "result" in init, init
        self.sock.send_multipart([ident, pack(p.notification("initialized", {}))])
        self.sock.send_multipart([ident, pack(p.request(2, "$/ping", {}))])
        _, pong = self.recv()
        took = time.perf_counter() - t0
        assert pong.get("result", {}).get("pid") == pid, pong
        return took

    def close(self) -> None:
        self.sock.close(linger=0)


def start_forker(module: str) -> subprocess.Popen[str]:
    """The bare preloaded process, with what the daemon's zygote preloads for this worker."""
    from animus.supervision.zygote import BASE_PRELOAD

    forker = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_forker.py")), "serve", *BASE_PRELOAD,
                               module, module + ".__main__"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert forker.stdout is not None and forker.stdout.readline().strip() == "ready"
    return forker


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(x: float) -> str:
    return f"{x * 1000:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--via", choices=("zygote", "exec"), default="zygote",
                        help="zygote: a first-party Python worker (forked); exec: a wrapper script")
    args = parser.parse_args()
    restarts: list[float] = []
    bares: list[float] = []
    forks: list[float] = []
    breakdown: dict[str, list[float]] = {"child_exited": [], "child_restarting": [], "child_started": []}
    with daemon(args.via) as (env, project, state_root):
        scope = Scope(project_root=project.resolve(), name=state_root.name, home=Path(env["ANIMUS_HOME"]),
                      root=state_root)
        control = ControlClient(scope.endpoint("control"), timeout=10)
        bus = Bus(scope.endpoint("bus.out"), control)
        config = json.loads((state_root / "state" / "supervisors" / "providers.json").read_text())
        spec = next(c for c in config["children"] if c["id"] == PLUGIN)
        # the supervisor file names the variables; the values come from the environment, as at spawn
        spec["env"] = {**{k: env[k] for k in spec.get("env_names", []) if k in env}, **spec.get("env_set", {})}
        host = BareHost(state_root.parent.parent)
        module = spec["argv"][2] if spec["argv"][1:2] == ["-m"] else "animus.testing_worker"
        fork_env = spec["env"] if args.via == "zygote" else {**spec["env"], "PROBE_MODE": "ok"}
        forker = start_forker(module)
        try:
            pid = control.call("plugin/call", {"name": PLUGIN, "method": "$/ping"})["result"]["pid"]
            up_since = time.monotonic()
            host.spawn_to_ping(spec["argv"], spec["env"], spec["cwd"])  # warm the page cache alike
            for _ in range(args.runs):
                while time.monotonic() - up_since <= HEALTHY_WINDOW:  # let its budget reset
                    bus.wait(lambda e: False, HEALTHY_WINDOW)
                took, marks, pid = restart_once(control, bus, pid)
                up_since = time.monotonic()
                restarts.append(took)
                for key, value in marks.items():
                    breakdown[key].append(value)
                bares.append(host.spawn_to_ping(spec["argv"], spec["env"], spec["cwd"]))
                forks.append(host.fork_to_ping(forker, module, fork_env, spec["cwd"]))
            status = control.call("daemon/status")
            node = next(c for s in status["tree"] for c in s["children"] if c["name"] == PLUGIN)
            if node["state"] != "running" or node["restarts"] != args.runs:
                raise SystemExit(f"unexpected end state: {node}")
        finally:
            forker.kill()
            forker.wait()
            host.close()
            bus.close()
            control.close()

    print(f"restart latency benchmark: {args.runs} runs, {os.cpu_count()} CPUs, via {args.via}, "
          f"worker = {' '.join(spec['argv'])}")
    print(f"{'':34}{'median':>10} {'p95':>10}")
    rows = [("restart: SIGKILL -> replacement ping", restarts), ("cold: spawn -> first ping", bares),
            ("floor: preloaded fork -> first ping", forks)]
    for label, values in rows:
        print(f"{label:34}{ms(statistics.median(values))} {ms(pct(values, 0.95))}")
    print("restart breakdown (from event timestamps, ms after the SIGKILL, median):")
    for key, label in (("child_exited", "death noticed"), ("child_restarting", "restart decided"),
                       ("child_started", "replacement acknowledged")):
        if breakdown[key]:
            print(f"  {label:32}{ms(statistics.median(breakdown[key]))}")
    cold = statistics.median(restarts) / statistics.median(bares)
    floor = statistics.median(restarts) / statistics.median(forks)
    print(f"ratio restart/cold spawn: median {cold:.2f}, p95 {pct(restarts, 0.95) / pct(bares, 0.95):.2f}")
    print(f"ratio restart/preloaded fork (the floor): median {floor:.2f}, "
          f"p95 {pct(restarts, 0.95) / pct(forks, 0.95):.2f}")
    print(f"targets: restart <= 2x the floor: {'met' if floor <= 2 else 'MISSED'} ({floor:.2f}x); "
          f"restart <= 1.3x a cold spawn: {'met' if cold <= 1.3 else 'MISSED'} ({cold:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
