"""Arbitrary msgpack values (hypothesis) at every socket the daemon binds that test_bus_fuzz does not cover.

test_bus_fuzz.py fuzzes the ipc bus input and the control socket. Here, one
daemon (with a tcp bus input) takes fuzzed frames on its tree socket, on a
role supervisor's plugin host socket and on the tcp bus input (from an
authorized CURVE client, and raw bytes from a stranger). Afterwards it must
be the same process, answer ``daemon status`` and ``daemon health`` (which
asks every child supervisor over the tree socket, and they their plugin
hosts), still log a good event from the same tcp client, and show what it
dropped in ``daemon metrics``. The edge checks themselves
(``animus.bus.frames``) are fuzzed directly too: for any value they return
the promised types or raise ``FrameError``, nothing else.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from conftest import FAST_RESTART, Env, stop_daemons
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from animus.bus.codec import pack
from animus.bus.curve import ClientKeys, secure_client
from animus.bus.envelope import make_event
from animus.bus.frames import FrameError, reply_id, request_fields, subtree
from animus.state.scope import Scope
from animus.testing import wait_until

FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

ints = st.integers(-(2**63), 2**64 - 1)
leaves = st.none() | st.booleans() | ints | st.floats() | st.text(max_size=30) | st.binary(max_size=30)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10) | ints | st.binary(max_size=5), inner, max_size=4),
                      max_leaves=12)
# maps that look like what each socket expects, one field at a time gone wrong
tree_msgs = st.fixed_dictionaries({"type": st.sampled_from(["ready", "tree", "reply", "request"]) | values},
                                  optional={"id": values, "children": values, "pid": values, "result": values})
rpc_msgs = st.fixed_dictionaries({"jsonrpc": st.just("2.0")},
                                 optional={"id": values, "method": st.sampled_from(["trigger/event", "$/progress",
                                                                                    "log"]) | values,
                                           "params": values, "result": values, "error": values})


def frames_of(msgs: st.SearchStrategy[Any]) -> st.SearchStrategy[list[bytes]]:
    return st.one_of(st.lists(st.binary(max_size=60), min_size=1, max_size=3), values.map(lambda v: [pack(v)]),
                     msgs.map(lambda m: [pack(m)]))


# -- the edge checks, alone ---------------------------------------------------------------------

@settings(max_examples=300, deadline=None, database=None)
@given(value=values | tree_msgs | rpc_msgs)
def test_edge_checks_return_the_promised_types_or_refuse(value: Any) -> None:
    for check in (request_fields, lambda v: reply_id(v) if isinstance(v, dict) else reply_id({"id": v}),
                  lambda v: subtree(v.get("children") if isinstance(v, dict) else v)):
        try:
            out = check(value)
        except FrameError as exc:
            assert exc.reason
            continue
        if check is request_fields:
            req_id, method, params = out
            assert type(method) is str and type(params) is dict and all(type(k) is str for k in params)
            assert req_id is None or type(req_id) in (int, str)
            hash(req_id)
        elif isinstance(out, int):
            hash(out)
        else:
            assert all(type(c) is dict and type(c["name"]) is str for c in out)


# -- one daemon, every socket -------------------------------------------------------------------

@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, ClientKeys, str]]:
    base = tmp_path_factory.mktemp("socket-fuzz")
    home, project = base / "home", base / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    environ = {k: v for k, v in __import__("os").environ.items() if not k.startswith("ANIMUS_")}
    environ.update({"ANIMUS_HOME": str(home), "ANIMUS_START_TIMEOUT": "60", "PYTHONUNBUFFERED": "1"})
    env = Env(home, project, environ)
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5, "bus": {"tcp": ["tcp://127.0.0.1:*"]}})
    try:
        env.start("--skip-preflight")
        out = subprocess.run([sys.executable, "-m", "animus.bus.curve", "new-client", "fuzz"], cwd=project,
                             env=environ, capture_output=True, text=True, timeout=30, check=True)
        exported = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
        keys = ClientKeys.from_env({k: v.strip("'") for k, v in exported.items()})
        assert keys is not None
        yield env, keys, _tcp_input(env)
    finally:
        stop_daemons(env)


def _state_root(env: Env) -> Path:
    return Path(env.call("daemon/status")["state_root"])


def _endpoint(env: Env, name: str) -> str:
    root = _state_root(env)
    return Scope(project_root=env.project.resolve(), name=root.name, home=env.home, root=root).endpoint(name)


def _tcp_input(env: Env) -> str:
    for line in filter(None, (_state_root(env) / "logs" / "events.jsonl").read_text().split("\n")):
        event = json.loads(line)
        if event["kind"] == "daemon_startup":
            return next(ep for ep in event["data"]["bus_in"] if ep.startswith("tcp://"))
    raise AssertionError("no daemon_startup event")


def _counter(env: Env, prefix: str) -> float:
    return sum(v for k, v in env.call("daemon/metrics")["counters"].items() if k.startswith(prefix))


def _still_whole(env: Env, pid: int) -> None:
    """Same process; status answers; health answers from every child supervisor (tree and hosts alive)."""
    assert env.call("daemon/status", timeout=5)["pid"] == pid
    health = env.call("daemon/health", timeout=15)
    assert [r for r in health["plugins"] if r.get("source") == "supervisor"] == [], health


def _dealers(endpoint: str, identities: list[bytes]) -> list[zmq.Socket[Any]]:
    out = []
    for ident in identities:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, ident)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.connect(endpoint)
        out.append(sock)
    return out


def test_fuzzed_tree_frames_are_dropped_and_counted(fuzzed: tuple[Env, ClientKeys, str]) -> None:
    env, _, _ = fuzzed
    pid = env.call("daemon/status")["pid"]
    socks = _dealers(_endpoint(env, "tree"), [b"fuzz", b"\xff\x00", b"x" * 200])

    @FUZZ
    @given(which=st.integers(0, 2), frames=frames_of(tree_msgs))
    @example(which=0, frames=[pack({"type": "reply", "id": [1, 2]})])
    @example(which=0, frames=[pack({"type": "reply", "id": {"a": 1}})])
    @example(which=1, frames=[b"\xc1"])
    def send(which: int, frames: list[bytes]) -> None:
        socks[which].send_multipart(frames)

    try:
        send()
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: _counter(env, "tree_frames_malformed_total") >= 3, timeout=10,
               what="the malformed tree frames to be counted")
    _still_whole(env, pid)


def test_fuzzed_plugin_host_frames_are_dropped_and_counted(fuzzed: tuple[Env, ClientKeys, str]) -> None:
    env, _, _ = fuzzed
    pid = env.call("daemon/status")["pid"]
    socks = _dealers(_endpoint(env, "plugins.providers"), [b"fuzz:1", b"fuzz:notapid", b"\xff", b"echo:424242"])

    @FUZZ
    @given(which=st.integers(0, 3), frames=frames_of(rpc_msgs))
    @example(which=0, frames=[pack({"jsonrpc": "2.0", "id": 1, "result": {}})])  # a reply to nothing of ours
    @example(which=3, frames=[pack({"jsonrpc": "2.0", "method": "trigger/event", "params": [1]})])
    @example(which=0, frames=[pack({"jsonrpc": "2.0", "method": ["not", "a", "name"]})])
    @example(which=2, frames=[b"junk"])
    def send(which: int, frames: list[bytes]) -> None:
        socks[which].send_multipart(frames)

    try:
        send()
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: _counter(env, "plugin_frames_dropped_total{supervisor=providers}") >= 3, timeout=10,
               what="the providers' plugin host to report what it dropped")
    _still_whole(env, pid)


def test_fuzzed_tcp_bus_frames_are_dropped_and_counted(fuzzed: tuple[Env, ClientKeys, str]) -> None:
    env, keys, endpoint = fuzzed
    pid = env.call("daemon/status")["pid"]
    before = _counter(env, "bus_events_malformed_total") + _counter(env, "bus_events_refused_total")
    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.LINGER, 3000)
    secure_client(sock, endpoint, keys)
    sock.connect(endpoint)
    assert sock.poll(10_000), "no subscription over the tcp input"
    sock.recv()
    events = st.builds(lambda src, kind, data: make_event(src, 1, time.time(), "fuzz", kind, "info", data),
                       st.sampled_from(["remote/fuzz:1", "runner/x:1", "daemon/root:1", "remote/other:1"]),
                       st.text(min_size=1, max_size=20), st.dictionaries(st.text(max_size=5), values, max_size=3))
    bodies = st.one_of(st.binary(max_size=100), values.map(pack), events.map(pack))

    @FUZZ
    @given(frames=st.one_of(st.tuples(st.binary(max_size=10), bodies).map(list),
                            st.lists(st.binary(max_size=40), min_size=1, max_size=4)))
    @example(frames=[b"fuzz", pack(make_event("daemon/root:1", 1, 1.7e9, "workflow", "workflow_completed"))])
    @example(frames=[b"fuzz", b"\xc1"])
    def send(frames: list[bytes]) -> None:
        sock.send_multipart(frames)

    try:
        send()
        # on the same connection, so it is logged only after every fuzzed frame was judged
        sock.send_multipart([b"fuzz", pack(make_event("remote/fuzz:sentinel", 1, time.time(), "fuzz", "sentinel"))])
        log = _state_root(env) / "logs" / "events.jsonl"
        wait_until(lambda: "remote/fuzz:sentinel" in log.read_text(), timeout=20, what="the sentinel in the log")
    finally:
        sock.close()
    # a stranger's raw bytes on the tcp port: no handshake, nothing reaches the bus
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00NULL" + b"\x00" * 40):
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            try:
                conn.sendall(junk)
            except OSError:
                pass
    assert _counter(env, "bus_events_malformed_total") + _counter(env, "bus_events_refused_total") > before
    # JSON lines end at "\n" only: a fuzzed string may hold U+2028 or \x85, where splitlines() would cut
    text = (_state_root(env) / "logs" / "events.jsonl").read_text()
    lines = [json.loads(x) for x in text.split("\n") if x]
    assert all(e["src"] == "remote/fuzz:sentinel" or not e["src"].startswith(("remote/", "runner/x"))
               or e["src"].startswith("remote/fuzz") for e in lines)
    assert not [e for e in lines if e["src"] == "daemon/root:1"]
    _still_whole(env, pid)
