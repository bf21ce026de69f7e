"""Malformed frames (hypothesis) against a running daemon: its bus input, its control socket, raw sockets.

Each test keeps one daemon for all examples (hypothesis runs inside the
test, so the expensive fixture is built once). Afterwards the daemon must
be the same process, answer ``daemon status``, still log good events, and
show what it dropped in ``daemon metrics``.
"""

from __future__ import annotations

import math
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
import zmq
from conftest import Env
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_bus import StreamFollower, bus_endpoint, counters, log_lines, logged_seqs, stream_factory

from animus.bus.codec import pack
from animus.bus.envelope import make_event
from animus.testing import wait_until

FUZZ = settings(max_examples=80, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# msgpack-able values, nested a little
ints = st.integers(-(2**63), 2**64 - 1)  # what msgpack can carry
leaves = st.none() | st.booleans() | ints | st.floats() | st.text(max_size=40) | st.binary(max_size=40)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10) | ints | st.binary(max_size=5),
                                        inner, max_size=4), max_leaves=12)


@pytest.fixture
def streams(tmp_path: Path) -> Iterator[Callable[..., StreamFollower]]:
    yield from stream_factory(tmp_path)


def _good_event(**changes: Any) -> dict[str, Any]:
    return {**make_event("fuzz/near:1", 1, 1_700_000_000.0, "fuzz", "near_miss"), **changes}


# events one field away from valid: the cases a buggy publisher sends
near_misses = st.one_of(
    st.builds(lambda k, v: _good_event(**{k: v}),
              st.sampled_from(["v", "ts", "seq", "src", "cat", "level", "kind", "data"]), values),
    st.builds(lambda ts: _good_event(ts=ts), st.sampled_from([math.nan, math.inf, -1.0, 1e300, 2**63 - 1])),
    st.builds(lambda d: _good_event(data=d), st.dictionaries(st.binary(min_size=1, max_size=4), values,
                                                             min_size=1, max_size=3)),
    st.builds(lambda kind: _good_event(kind=kind), st.text(min_size=1, max_size=300)),
)
bodies = st.one_of(st.binary(max_size=200), values.map(pack), near_misses.map(pack))
frame_lists = st.one_of(
    st.tuples(st.binary(max_size=20), bodies).map(list),
    st.lists(st.binary(max_size=60), min_size=1, max_size=5),
)


def _xpub_into(endpoint: str) -> zmq.Socket[Any]:
    """A raw publisher socket, connected once the broker's subscription arrived."""
    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.connect(endpoint)
    assert sock.poll(10_000), "no subscription from the broker"
    sock.recv()
    return sock


def _malformed(c: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in c.items() if k.startswith(prefix))


def test_fuzzed_bus_frames_are_dropped_and_counted(daemon: Env,
                                                   streams: Callable[..., StreamFollower]) -> None:
    pid = daemon.status()["pid"]
    stream = streams(daemon)  # the stream sees the same garbage through bus.out
    stream.wait_streaming()
    sock = _xpub_into(bus_endpoint(daemon, "bus.in"))
    try:
        _fuzz_bus(sock)
    finally:
        sock.close(linger=2000)
    log = Path(daemon.status()["state_root"]) / "logs" / "events.jsonl"
    wait_until(lambda: logged_seqs(log, "fuzz/sentinel"), timeout=20, what="the sentinel in events.jsonl")

    assert daemon.status()["pid"] == pid
    c = counters(daemon)
    for reason in ("schema", "frames", "oversized", "encode"):
        assert c.get(f"bus_events_malformed_total{{reason={reason}}}", 0) >= 1, (reason, c)
    assert _malformed(c, "bus_events_malformed_total") >= 5
    for line in log_lines(log):  # nothing torn, nothing unparseable
        orjson.loads(line)

    def stream_got_sentinel() -> bool:
        stream.read()
        return "fuzz/sentinel:1" in stream.other and stream.proc.poll() is None

    wait_until(stream_got_sentinel, timeout=20, what="the stream to survive and print the sentinel")
    summary = stream.stop()
    assert "stream ended:" in summary and "Traceback" not in summary


def _fuzz_bus(sock: zmq.Socket[Any]) -> None:
    """Every example onto the bus, then a good sentinel event on the same socket."""

    @FUZZ
    @given(frames=frame_lists)
    @example(frames=[b"fuzz", b"\xc1"])  # not msgpack
    @example(frames=[b"a", b"b", b"c"])  # wrong frame count
    @example(frames=[b"fuzz", b"\x00" * (1024 * 1024 + 1)])  # oversized
    @example(frames=[b"fuzz", pack(_good_event(data={b"bin": 1}))])  # JSON cannot hold it
    @example(frames=[b"fuzz", pack(_good_event(ts=math.nan))])
    def send(frames: list[bytes]) -> None:
        sock.send_multipart(frames)

    send()
    # on the same socket, so it is logged only after every fuzzed frame was judged
    sentinel = make_event("fuzz/sentinel:1", 1, 1_700_000_000.0, "fuzz", "sentinel")
    sock.send_multipart([b"fuzz", msgpack.packb(sentinel)])


def test_fuzzed_control_requests_get_errors_and_are_counted(daemon: Env) -> None:
    pid = daemon.status()["pid"]
    before = counters(daemon).get("control_requests_malformed_total", 0)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(bus_endpoint(daemon, "control"))
    safe_methods = st.sampled_from(["daemon/status", "daemon/metrics", "daemon/logs", "bus/sync",
                                    "plugin/list", "no/such-method"])
    requests = st.fixed_dictionaries(
        {"id": values, "method": safe_methods | st.text(max_size=20).filter(lambda m: "/" not in m)},
        optional={"params": values})
    frames = st.one_of(
        st.lists(st.binary(max_size=80), min_size=1, max_size=3),
        values.map(lambda v: [pack(v)]),
        requests.map(lambda r: [pack(r)]),
    )

    @FUZZ
    @given(frames=frames)
    @example(frames=[b"\xc1garbage"])
    @example(frames=[pack([1, 2, 3])])
    @example(frames=[b"a", b"b"])
    @example(frames=[pack({"id": 1, "method": "daemon/logs", "params": {"limit": "many"}})])
    def send(frames: list[bytes]) -> None:
        sock.send_multipart(frames)

    try:
        send()
        answered = _answered_after_junk(sock)
    finally:
        sock.close()
    assert answered == pid, "the daemon stopped answering its control socket"
    after = counters(daemon).get("control_requests_malformed_total", 0)
    assert after > before
    assert daemon.status()["pid"] == pid


def _answered_after_junk(sock: zmq.Socket[Any]) -> int | None:
    """Send a good request after the junk; the daemon pid from its answer (None: no answer)."""
    last = f"last-{uuid.uuid4().hex}"
    sock.send(pack({"id": last, "method": "daemon/status", "params": {}}))
    while sock.poll(20_000):  # replies to the junk come first
        reply = msgpack.unpackb(sock.recv(), raw=False, strict_map_key=False)
        if isinstance(reply, dict) and reply.get("id") == last:
            return int(reply["result"]["pid"])
    return None


def test_raw_bytes_on_the_unix_sockets_do_not_hurt(daemon: Env) -> None:
    """Not even ZeroMQ framing: libzmq must drop the connection, the daemon carry on."""
    pid = daemon.status()["pid"]
    paths = [bus_endpoint(daemon, name)[len("ipc://"):] for name in ("bus.in", "bus.out", "control")]

    @settings(max_examples=60, deadline=None, database=None)
    @given(path=st.sampled_from(paths), data=st.binary(min_size=1, max_size=300))
    @example(path=paths[0], data=b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00NULL" + b"\x00" * 100)  # ZMTP-ish
    def poke(path: str, data: bytes) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(path)
            try:
                s.sendall(data)
            except OSError:
                pass  # libzmq may hang up first

    poke()
    assert daemon.status()["pid"] == pid
    assert daemon.json("daemon", "metrics")["counters"] is not None
