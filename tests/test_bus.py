"""The event bus: codec, envelope, seq accounting, event log, metrics, broker, and 100k events end to end.

Unit tests need no processes (the broker ones run it in-process on temp ipc
endpoints). The integration test pushes 100 000 events from publisher
subprocesses through a real daemon while ``daemon stream --json`` and the
log writer run, and counts: the stream's events plus its reported gaps are
everything sent, and ``events.jsonl`` holds every event in per-publisher order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import zmq
from conftest import ANIMUS, Env

from animus.bus.broker import WATERMARK_KIND, Broker
from animus.bus.codec import MAX_FRAME_BYTES, CodecError, new_packer, pack, unpack
from animus.bus.envelope import VERSION, level_at_least, make_event, validate_event
from animus.bus.eventlog import EventLog, read_tail, to_log_line
from animus.bus.metrics import MAX_SERIES_PER_NAME, Metrics, label_value, render_prometheus
from animus.bus.publisher import Publisher
from animus.bus.subscriber import Gap, SeqTracker
from animus.state.scope import Scope
from animus.testing import wait_until

# -- helpers shared with tests/chaos/test_bus_chaos.py and tests/test_bus_fuzz.py

PUBLISHER = """
import sys
from animus.bus.publisher import BusUnavailable, Publisher
endpoint, src, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
pub = Publisher(endpoint, src)
if not pub.wait_ready(10):
    sys.exit(3)
for i in range(count):
    pub.publish("test", "tick", data={"i": i})
pub.close(linger_ms=60000)
"""


def bus_endpoint(env: Env, name: str) -> str:
    """The daemon's endpoint ``name`` (``bus.in``, ``bus.out``, ``control``)."""
    root = Path(env.status()["state_root"])
    scope = Scope(project_root=env.project.resolve(), name=root.name, home=env.home, root=root)
    return scope.endpoint(name)


def spawn_publisher(env: Env, endpoint: str, src: str, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", PUBLISHER, endpoint, src, str(count)],
                            env=env.env, stderr=subprocess.PIPE)


class StreamFollower:
    """A real ``animus daemon stream --json``; its output read as it grows."""

    def __init__(self, env: Env, out_dir: Path, name: str = "stream") -> None:
        self.out_path = out_dir / f"{name}.out"
        self.err_path = out_dir / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*ANIMUS, "daemon", "stream", "--json"], cwd=env.project,
                                         env=env.env, stdout=out, stderr=err)
        self._fh = open(self.out_path, "rb")
        self._rest = b""
        self.seqs: dict[str, list[int]] = {}
        self.missing: dict[str, int] = {}
        self.gaps: list[dict[str, Any]] = []
        self.other: dict[str, int] = {}  # src -> records that are neither ticks nor gaps

    def wait_streaming(self, timeout: float = 30) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"stream exited: {self.err_path.read_text()}"
            return b"streaming events" in self.err_path.read_bytes()

        wait_until(ready, timeout=timeout, what="daemon stream to subscribe")

    def read(self) -> None:
        lines = (self._rest + self._fh.read()).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            rec = orjson.loads(line)
            src = rec.get("src", "")
            if rec.get("kind") == "stream_gap":
                self.gaps.append(rec)
                self.missing[src] = self.missing.get(src, 0) + rec["missing"]
            elif rec.get("kind") == "tick":
                self.seqs.setdefault(src, []).append(rec["seq"])
            else:
                self.other[src] = self.other.get(src, 0) + 1

    def accounted(self, src: str) -> int:
        """Events of ``src`` received plus those reported missing."""
        return len(self.seqs.get(src, [])) + self.missing.get(src, 0)

    def stop(self) -> str:
        """End the stream (SIGTERM, as Ctrl-C would) and return its stderr. Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._fh.closed:
            self.read()
            self._fh.close()
        return self.err_path.read_text()


def stream_factory(tmp_path: Path) -> Iterator[Callable[..., StreamFollower]]:
    """Make ``StreamFollower``s that are stopped at teardown, even when the test failed."""
    made: list[StreamFollower] = []

    def make(env: Env, name: str = "stream") -> StreamFollower:
        made.append(StreamFollower(env, tmp_path, name))
        return made[-1]

    yield make
    for stream in made:
        stream.stop()


@pytest.fixture
def streams(tmp_path: Path) -> Iterator[Callable[..., StreamFollower]]:
    yield from stream_factory(tmp_path)


def log_lines(path: Path) -> Iterator[bytes]:
    """Every line of events.jsonl and its rotations, oldest file first."""
    files = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    for file in [*files, path]:
        data = file.read_bytes()
        assert not data or data.endswith(b"\n"), f"{file.name} ends with a torn line"
        yield from data.splitlines()


def logged_seqs(path: Path, prefix: str) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    needle = f'"src":"{prefix}'.encode()
    for line in log_lines(path):
        if needle in line:
            rec = orjson.loads(line)
            seqs.setdefault(rec["src"], []).append(rec["seq"])
    return seqs


def counters(env: Env) -> dict[str, float]:
    return env.json("daemon", "metrics")["counters"]  # type: ignore[no-any-return]


# -- codec -----------------------------------------------------------------------

def test_codec_round_trip_and_reused_packer_agree() -> None:
    obj = {"a": 1, "b": [1.5, "x", None, True], "c": b"\x00bin", "d": {"n": {"m": []}}}
    assert unpack(pack(obj)) == obj
    packer = new_packer()
    assert packer(obj) == pack(obj) and packer(obj) == pack(obj)  # reusable, no state carried
    assert unpack(pack({1: "int key"})) == {1: "int key"}


def test_codec_errors_keep_the_raw_bytes() -> None:
    with pytest.raises(CodecError) as exc:
        unpack(b"\xc1" + b"z" * 100)  # 0xc1 is never valid msgpack
    assert exc.value.raw == (b"\xc1" + b"z" * 100)[:64] and "not msgpack" in exc.value.reason
    with pytest.raises(CodecError, match="exceeds"):
        unpack(b"\x00" * 11, max_size=10)
    with pytest.raises(CodecError):
        unpack(pack([1, 2]) + b"trailing")
    with pytest.raises(CodecError):
        unpack(b"")
    assert MAX_FRAME_BYTES >= 1024 * 1024


# -- envelope --------------------------------------------------------------------

def _event(**changes: Any) -> dict[str, Any]:
    return {**make_event("test/a:1", 1, 1_700_000_000.5, "workflow", "workflow_started",
                         data={"message": "hi"}, workflow_id="wf-1"), **changes}


def test_make_event_has_the_v1_shape() -> None:
    event = _event()
    assert set(event) == {"v", "ts", "seq", "src", "cat", "level", "kind", "workflow_id", "run_id",
                          "phase", "data"}
    assert event["v"] == VERSION == 1 and validate_event(event) is event
    assert make_event("s", 1, 0.0, "c", "k")["data"] == {}


@pytest.mark.parametrize("changes, reason", [
    ({"v": 2}, "version"),
    ({"seq": True}, "'seq'"),
    ({"seq": -1}, "negative"),
    ({"seq": "1"}, "'seq'"),
    ({"ts": float("nan")}, "'ts'"),
    ({"ts": float("inf")}, "'ts'"),
    ({"ts": 1e300}, "'ts'"),
    ({"ts": -5.0}, "'ts'"),
    ({"level": "loud"}, "level"),
    ({"kind": ""}, "'kind'"),
    ({"src": "x" * 257}, "'src'"),
    ({"cat": None}, "'cat'"),
    ({"data": [1]}, "'data'"),
    ({"data": None}, "'data'"),
])
def test_validate_event_names_what_is_wrong(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_event(_event(**changes))


def test_validate_event_rejects_non_maps_and_missing_fields() -> None:
    for bad in ([1, 2], "event", None, 3):
        with pytest.raises(ValueError, match="not a map"):
            validate_event(bad)
    event = _event()
    del event["kind"]
    with pytest.raises(ValueError, match="'kind' missing"):
        validate_event(event)
    without_data = _event()
    del without_data["data"]
    assert validate_event(without_data) is without_data


def test_level_ordering() -> None:
    assert level_at_least("error", "warn") and level_at_least("warn", "warn")
    assert not level_at_least("info", "warn") and level_at_least("warning", "warn")


# -- seq accounting ----------------------------------------------------------------

def test_seq_tracker_reports_a_jump_as_a_gap() -> None:
    t = SeqTracker()
    assert t.observe("a", 5) is None  # no baseline: the first event starts the count
    assert t.observe("a", 6) is None
    assert t.observe("a", 9) == Gap("a", 7, 8)
    assert (t.gaps, t.missing) == (1, 2) and Gap("a", 7, 8).missing == 2


def test_seq_tracker_watermark_reveals_a_lost_tail() -> None:
    t = SeqTracker()
    t.observe("a", 1)
    t.observe("a", 2)
    assert t.watermark({"a": 2}) == []
    assert t.watermark({"a": 5, "b": 7}) == [Gap("a", 3, 5)]  # b unknown, no baseline: starts at 7
    assert t.observe("a", 6) is None
    assert t.observe("b", 9) == Gap("b", 8, 8)
    assert t.watermark({"a": "junk"}) == []  # type: ignore[dict-item]


def test_seq_tracker_baseline_expects_new_publishers_from_one() -> None:
    t = SeqTracker(baseline={"old": 40})
    assert t.observe("old", 41) is None
    assert t.observe("new", 3) == Gap("new", 1, 2)  # seq 1 and 2 came after we subscribed
    assert t.watermark({"quiet": 2, "old": 41}) == [Gap("quiet", 1, 2)]
    assert t.observe("old", 1) is None  # a restart under the same name: counting starts again
    assert t.observe("old", 2) is None and t.missing == 4


# -- event log ---------------------------------------------------------------------

def test_log_line_is_the_envelope_with_rfc3339_ts_and_msg() -> None:
    line = to_log_line(_event())
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    rec = json.loads(line)
    assert rec["ts"] == "2023-11-14T22:13:20.500000Z"
    assert rec["msg"] == "hi" and rec["workflow_id"] == "wf-1"
    assert "run_id" not in rec and "phase" not in rec  # None fields are left out
    assert json.loads(to_log_line(_event(data={})))["msg"] == "workflow_started"
    with pytest.raises(TypeError):
        to_log_line(_event(data={b"bytes key": 1}))


def test_eventlog_rotates_by_size_and_keeps_n(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    log = EventLog(path, max_bytes=1000, keep=3)
    for i in range(60):
        log.write_lines([to_log_line(_event(seq=i + 1))])
    log.close()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["events.jsonl", "events.jsonl.1", "events.jsonl.2", "events.jsonl.3"]
    seqs = [json.loads(line)["seq"] for line in log_lines(path)]
    assert seqs == sorted(seqs) and seqs[-1] == 60  # oldest rotations dropped, order kept
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_eventlog_repair_trims_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = to_log_line(_event(seq=1)) + to_log_line(_event(seq=2))
    path.write_bytes(good + b'{"v":1,"ts":"2023-')
    log = EventLog(path)
    assert log.repaired_bytes == len(b'{"v":1,"ts":"2023-')
    log.write_lines([to_log_line(_event(seq=3))])
    log.close()
    assert [json.loads(line)["seq"] for line in log_lines(path)] == [1, 2, 3]
    path.write_bytes(b"no newline at all")
    assert EventLog(path).repaired_bytes == len(b"no newline at all") and path.read_bytes() == b""


def test_eventlog_takes_back_a_half_written_batch_on_a_write_error(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from animus.bus import eventlog

    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.write_lines([to_log_line(_event(seq=1))])
    real_write, calls = os.write, []

    def disk_fills_up(fd: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))  # a short write…
        raise OSError(errno.ENOSPC, "No space left on device")  # …then the disk is full

    monkeypatch.setattr(eventlog.os, "write", disk_fills_up)
    with pytest.raises(OSError):
        log.write_lines([to_log_line(_event(seq=2)), to_log_line(_event(seq=3))])
    monkeypatch.setattr(eventlog.os, "write", real_write)
    log.write_lines([to_log_line(_event(seq=4))])
    log.close()
    assert [json.loads(line)["seq"] for line in log_lines(path)] == [1, 4]


def test_read_tail_walks_rotations_newest_last_with_filters(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=2000, keep=5)
    for i in range(40):
        level = "error" if i % 10 == 0 else "info"
        log.write_lines([to_log_line(_event(seq=i + 1, level=level, cat="phase" if i % 2 else "workflow"))])
    log.close()
    with open(path, "ab") as fh:
        fh.write(b"not json\n")
    assert len(list(path.parent.glob("events.jsonl.*"))) >= 2
    tail = read_tail(path, limit=5)
    assert [e["seq"] for e in tail] == [36, 37, 38, 39, 40]
    assert [e["seq"] for e in read_tail(path, limit=100, level="error")] == [1, 11, 21, 31]
    assert all(e["cat"] == "phase" for e in read_tail(path, limit=100, cat="ph"))
    assert [e["seq"] for e in read_tail(path, limit=3, search='"seq":2')] == [27, 28, 29]


# -- metrics -------------------------------------------------------------------------

def test_metrics_count_events_by_kind_and_runbook_counters() -> None:
    m = Metrics()
    assert m.snapshot()["counters"]["agent_runs_total"] == 0
    m.count_events([
        {"kind": "workflow_completed", "data": {}},
        {"kind": "agent_run_started", "data": {"provider": "claude"}},
        {"kind": "phase_completed", "data": {"status": "ok", "duration_ms": 40, "provider": "claude",
                                             "usage": {"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.5}}},
        {"kind": "phase_completed", "data": {"usage": ["not", "a", "map"], "duration_ms": float("nan")}},
        {"kind": "tick", "data": {}},
        {"kind": "tick"},
    ])
    c = m.snapshot()["counters"]
    assert c["subscription_events_total{kind=tick}"] == 2
    assert c["workflow_runs_total{status=completed}"] == 1 and "workflow_runs_total" not in c
    assert c["agent_runs_total{provider=claude}"] == 1
    assert c["agent_input_tokens_total{provider=claude}"] == 10 and c["agent_cost_usd_total{provider=claude}"] == 0.5
    assert c["phase_executions_total{status=unknown}"] == 1
    hist = m.snapshot()["histograms"]["phase_duration_seconds"]
    assert hist["count"] == 1 and hist["buckets"]["0.05"] == 1 and hist["buckets"]["0.01"] == 0


def test_metric_labels_are_sanitised_and_bounded() -> None:
    assert label_value("phase_completed") == "phase_completed"
    assert label_value('a,b}="c\nd') == "a_b___c_d"
    assert len(label_value("x" * 500)) == 64
    m = Metrics()
    for i in range(MAX_SERIES_PER_NAME + 50):
        m.inc("subscription_events_total", kind=f"k{i}")
    c = m.snapshot()["counters"]
    assert c["subscription_events_total{kind=_other}"] == 50
    assert len([k for k in c if k.startswith("subscription_events_total")]) == MAX_SERIES_PER_NAME + 1


def test_prometheus_text_rendering() -> None:
    m = Metrics()
    m.inc("bus_events_malformed_total", reason="schema")
    m.inc("bus_events_malformed_total", 2, reason="frames")
    m.inc("control_requests_malformed_total")
    m.observe("phase_duration_seconds", 0.2, phase="build")
    m.gauge_sources["broken"] = lambda: 1 / 0  # type: ignore[dict-item, return-value]
    m.gauge_sources["tree"] = lambda: {'tree_children{supervisor=providers,state=running}': 2}
    text = render_prometheus(m.snapshot())
    lines = text.splitlines()
    assert text.endswith("\n")
    assert lines.count("# TYPE animus_bus_events_malformed_total counter") == 1
    assert 'animus_bus_events_malformed_total{reason="frames"} 2' in lines
    assert 'animus_bus_events_malformed_total{reason="schema"} 1' in lines
    assert "animus_control_requests_malformed_total 1" in lines
    assert "# TYPE animus_daemon_uptime_seconds gauge" in lines
    assert 'animus_tree_children{supervisor="providers",state="running"} 2' in lines
    assert "# TYPE animus_phase_duration_seconds histogram" in lines
    assert 'animus_phase_duration_seconds_bucket{phase="build",le="0.1"} 0' in lines
    assert 'animus_phase_duration_seconds_bucket{phase="build",le="0.5"} 1' in lines
    assert 'animus_phase_duration_seconds_bucket{phase="build",le="+Inf"} 1' in lines
    assert 'animus_phase_duration_seconds_count{phase="build"} 1' in lines
    for line in lines:  # every sample line is `name{labels} value` with a number
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


# -- broker, in-process --------------------------------------------------------------

@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    ctx = zmq.Context()
    b = Broker(ctx, [f"ipc://{tmp_path}/in"], [f"ipc://{tmp_path}/out"], tmp_path / "events.jsonl",
               Metrics(), watermark_interval=0.05)
    b.start()
    yield b
    b.stop()
    ctx.destroy(linger=0)


def _subscriber(broker: Broker) -> zmq.Socket[Any]:
    sub = broker.ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(broker.bound_out[0])
    return sub


def _next_event(sub: zmq.Socket[Any], kind: str, timeout: float = 5) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sub.poll(50):
            event = unpack(sub.recv_multipart()[1])
            if event.get("kind") == kind:
                return event  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind} event within {timeout}s")


def test_broker_logs_every_event_and_counts_malformed_frames(broker: Broker, tmp_path: Path) -> None:
    pub = Publisher(broker.bound_in[0], "test/pub:1", broker.ctx)
    assert pub.wait_ready(5)
    raw = broker.ctx.socket(zmq.XPUB)
    raw.setsockopt(zmq.XPUB_NODROP, 1)
    raw.connect(broker.bound_in[0])
    assert raw.poll(5000)
    raw.recv()
    raw.send_multipart([b"bus", b"\xc1not msgpack"])  # schema
    raw.send_multipart([b"a", b"b", b"c"])  # frames
    raw.send_multipart([b"bus", b"\x00" * (1024 * 1024 + 1)])  # oversized
    raw.send_multipart([b"bus", pack(_event(data={b"bin": 1}))])  # not JSON-encodable
    for i in range(500):
        pub.publish("test", "tick", data={"i": i})
    wait_until(lambda: broker.last_seq("test/pub:1") == 500, timeout=10, what="500 events logged")
    # the writer counts a batch once it is written, after it has seen each event's seq: wait for that too
    c = wait_until(lambda: (c := broker.metrics.snapshot()["counters"]).get("bus_events_total") == 500 and c,
                   timeout=10, what="the batch counted")
    for reason in ("schema", "frames", "oversized", "encode"):
        assert c[f"bus_events_malformed_total{{reason={reason}}}"] == 1, reason
    assert c["bus_events_total"] == 500 and "bus_gaps_total" not in c
    wait_until(lambda: (tmp_path / "events.jsonl").read_bytes().count(b"\n") >= 500, timeout=5,
               what="the batch on disk")
    assert logged_seqs(tmp_path / "events.jsonl", "test/pub") == {"test/pub:1": list(range(1, 501))}
    raw.close(linger=0)
    pub.close()


def test_a_light_publisher_loses_nothing_and_leaves_nothing_queued(broker: Broker, tmp_path: Path) -> None:
    """A runner's publisher speaks ZMTP itself (no libzmq context): the broker's subscription is its
    handshake, every event reaches the log in order while a subscriber joins midway (its
    subscription reaches the publisher too and must not stall it), and a close right after the
    last send loses nothing (what was sent is in the kernel's buffer: no linger)."""
    pub = Publisher(broker.bound_in[0], "test/light:1", light=True)
    assert pub.wait_ready(5) and pub._light is not None
    sub = None
    for i in range(2000):
        if i == 1000:
            sub = _subscriber(broker)
        pub.publish("test", "tick", data={"i": i})
    pub.close()
    wait_until(lambda: broker.last_seq("test/light:1") == 2000, timeout=10, what="2000 events logged")
    wait_until(lambda: len(logged_seqs(tmp_path / "events.jsonl", "test/light").get("test/light:1", [])) == 2000,
               timeout=5, what="the batch on disk")
    assert logged_seqs(tmp_path / "events.jsonl", "test/light") == {"test/light:1": list(range(1, 2001))}
    assert sub is not None
    sub.close(linger=0)
    # tcp:// (a remote runner, CURVE) always goes through libzmq
    remote = Publisher("tcp://127.0.0.1:9", "test/remote:1", light=True)
    assert remote._light is None
    remote.close(linger_ms=0)


def test_a_light_publisher_waits_for_a_broker_that_is_not_up_yet(tmp_path: Path) -> None:
    """As libzmq reconnects: a runner started while a restarting daemon binds its bus (found by
    test_agent_clis: a stale socket file refuses connections until the new broker binds it)."""
    endpoint = f"ipc://{tmp_path}/in"
    (tmp_path / "in").touch()  # the stale socket file of a killed daemon: ECONNREFUSED, then ENOENT
    pub = Publisher(endpoint, "test/light:2", light=True)
    assert not pub.wait_ready(0.2)  # (publish() would wait 5 s, then raise BusUnavailable)
    (tmp_path / "in").unlink()
    ctx = zmq.Context()
    late = Broker(ctx, [endpoint], [f"ipc://{tmp_path}/out"], tmp_path / "events.jsonl", Metrics())
    waiting = threading.Thread(target=pub.wait_ready, args=(10,))
    waiting.start()  # connecting over and over while the broker is not there
    try:
        late.start()
        waiting.join(15)
        assert pub.wait_ready(0) and pub.publish("test", "late")["seq"] == 1
        pub.close()
        wait_until(lambda: late.last_seq("test/light:2") == 1, timeout=10, what="the event logged")
    finally:
        late.stop()
        ctx.destroy(linger=0)


def test_broker_watermarks_follow_publishers_and_answer_sync_markers(broker: Broker) -> None:
    sub = _subscriber(broker)
    pub = Publisher(broker.bound_in[0], "test/pub:2", broker.ctx)
    assert pub.wait_ready(5)
    for _ in range(3):
        pub.publish("test", "tick")
    mark = _next_event(sub, WATERMARK_KIND)
    wait_until(lambda: _next_event(sub, WATERMARK_KIND)["data"]["last_seq"].get("test/pub:2") == 3,
               timeout=5, what="a watermark at seq 3")
    assert mark["src"] == broker.src and mark["level"] == "debug" and mark["cat"] == "bus"
    pub.publish("bus", "stream_sync", data={"nonce": "n-1"})
    sync = _next_event(sub, WATERMARK_KIND)
    while sync["data"]["sync"] != "n-1":
        sync = _next_event(sub, WATERMARK_KIND)
    assert sync["data"]["last_seq"]["test/pub:2"] == 4  # as of the marker, the marker included
    assert broker.src not in sync["data"]["last_seq"]  # watermarks are not events: never logged
    sub.close(linger=0)
    pub.close()


# -- 100 000 events end to end --------------------------------------------------------

def test_100k_events_through_a_live_daemon_are_all_accounted_for(
        daemon: Env, streams: Callable[..., StreamFollower]) -> None:
    """2 publisher processes x 50 000 events -> broker -> ``daemon stream --json`` and events.jsonl."""
    stream = streams(daemon)
    stream.wait_streaming()
    endpoint = bus_endpoint(daemon, "bus.in")
    per = 50_000
    srcs = [f"test/burst{i}:{os.getpid()}" for i in range(2)]
    started = time.monotonic()
    pubs = [spawn_publisher(daemon, endpoint, src, per) for src in srcs]

    def stream_accounts_for_all() -> bool:
        stream.read()
        return all(stream.accounted(src) >= per for src in srcs)

    wait_until(stream_accounts_for_all, timeout=50, interval=0.05,
               what="the stream to receive or report as gaps every event")
    for pub in pubs:
        _, err = pub.communicate(timeout=30)
        assert pub.returncode == 0, err
    elapsed = time.monotonic() - started
    summary = stream.stop()
    for src in srcs:
        seqs = stream.seqs.get(src, [])
        assert len(seqs) + stream.missing.get(src, 0) == per, src
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, no duplicates
        assert not seqs or seqs[-1] <= per
    gaps = [g for g in stream.gaps if g["src"] in srcs]
    assert all(g["missing"] == g["to_seq"] - g["from_seq"] + 1 > 0 for g in gaps)
    received = sum(len(stream.seqs.get(s, [])) for s in srcs)
    assert f"stream ended: {received + sum(stream.other.values())} events" in summary
    assert summary.rstrip().endswith(", 0 malformed")

    log = daemon.status()["state_root"] + "/logs/events.jsonl"
    wait_until(lambda: sum(len(v) for v in logged_seqs(Path(log), "test/burst").values()) >= 2 * per,
               timeout=30, interval=0.2, what="events.jsonl to hold all 100 000 events")
    assert logged_seqs(Path(log), "test/burst") == {src: list(range(1, per + 1)) for src in srcs}
    c = counters(daemon)
    assert c["subscription_events_total{kind=tick}"] == 2 * per
    assert "bus_gaps_total" not in c and not any(k.startswith("bus_events_malformed_total") for k in c)
    print(f"100k events: stream accounted in {elapsed:.1f}s; "
          f"{sum(g['missing'] for g in gaps)} reported missing in {len(gaps)} gaps")


# -- the CLI fast path (bench/cli_latency.py) ---------------------------------------

def test_daemon_status_fast_path_answers_like_the_typer_app(daemon: Env) -> None:
    """``daemon status --json`` skips typer for speed; its answer and exit codes must not change."""
    typer_app = ("import sys; sys.argv = ['animus', *sys.argv[1:]]; "
                 "from animus.cli.main import _app; _app()(prog_name='animus')")

    def both(*args: str) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        fast = daemon.run(*args)
        full = subprocess.run([sys.executable, "-c", typer_app, *args], cwd=daemon.project, env=daemon.env,
                              capture_output=True, text=True, timeout=60, check=False)
        return fast, full

    fast, full = both("daemon", "status", "--json")
    assert fast.returncode == full.returncode == 0
    def strip(out: str) -> dict[str, Any]:
        return {k: v for k, v in json.loads(out).items() if k != "uptime_seconds"}

    assert strip(fast.stdout) == strip(full.stdout)
    fast, full = both("--project-root", str(daemon.project), "daemon", "status", "--json")
    assert strip(fast.stdout) == strip(full.stdout)
    other = daemon.home / "elsewhere"
    other.mkdir()
    fast, full = both("--project-root", str(other), "daemon", "status", "--json")
    assert fast.returncode == full.returncode == 5
    assert fast.stderr == full.stderr and fast.stdout == full.stdout == ""
