"""The bus under real signals: killed and stopped subscribers, killed publishers, a killed daemon.

What must hold, counted rather than assumed:
- the daemon keeps serving (same pid, answers ``daemon status``, a new stream subscribes);
- ``events.jsonl`` never ends in a torn line, and a publisher killed mid-burst
  left a gap-free prefix of its events in it (the capture lane is lossless);
- a subscriber that falls behind loses events only visibly: received plus
  reported gaps is exactly what was sent.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import psutil
import pytest
from conftest import FAST_RESTART, Env, alive
from test_bus import (
    StreamFollower,
    bus_endpoint,
    counters,
    log_lines,
    logged_seqs,
    spawn_publisher,
    stream_factory,
)

from animus.testing import wait_until

pytestmark = pytest.mark.chaos


@pytest.fixture
def streams(tmp_path: Path) -> Iterator[Callable[..., StreamFollower]]:
    yield from stream_factory(tmp_path)


def _events_log(env: Env) -> Path:
    return Path(env.status()["state_root"]) / "logs" / "events.jsonl"


def _all_lines_parse(path: Path) -> int:
    n = 0
    for line in log_lines(path):  # also asserts every file ends with a newline
        orjson.loads(line)
        n += 1
    return n


def test_killing_the_stream_and_publishers_mid_burst(daemon: Env,
                                                    streams: Callable[..., StreamFollower]) -> None:
    pid = daemon.status()["pid"]
    stream = streams(daemon, "victim")
    stream.wait_streaming()
    endpoint = bus_endpoint(daemon, "bus.in")
    tag = os.getpid()
    victims = [spawn_publisher(daemon, endpoint, f"chaos/victim{i}:{tag}", 200_000) for i in range(2)]
    survivor = spawn_publisher(daemon, endpoint, f"chaos/survivor:{tag}", 30_000)

    def mid_burst() -> bool:
        stream.read()
        return sum(len(stream.seqs.get(f"chaos/victim{i}:{tag}", [])) for i in range(2)) >= 10_000

    wait_until(mid_burst, timeout=30, interval=0.05, what="the burst to be under way")
    stream.proc.kill()
    for proc in victims:
        proc.kill()
    for proc in (*victims, stream.proc):
        proc.wait(10)
        if proc is not stream.proc and proc.stderr:
            proc.stderr.close()
    _, err = survivor.communicate(timeout=60)
    assert survivor.returncode == 0, err

    assert daemon.status()["pid"] == pid  # still serving, not restarted
    fresh = streams(daemon, "fresh")
    fresh.wait_streaming()
    after = spawn_publisher(daemon, endpoint, f"chaos/after:{tag}", 10)
    after.communicate(timeout=30)

    def fresh_got_them() -> bool:
        fresh.read()
        return fresh.accounted(f"chaos/after:{tag}") == 10

    wait_until(fresh_got_them, timeout=15, what="a new subscriber to get events after the kills")
    assert fresh.seqs[f"chaos/after:{tag}"] == list(range(1, 11))
    fresh.stop()
    stream.stop()

    log = _events_log(daemon)
    wait_until(lambda: len(logged_seqs(log, "chaos/survivor").get(f"chaos/survivor:{tag}", [])) == 30_000,
               timeout=30, interval=0.2, what="the survivor's burst in events.jsonl")
    seqs = logged_seqs(log, "chaos/")
    assert seqs[f"chaos/survivor:{tag}"] == list(range(1, 30_001))
    for i in range(2):
        got = seqs.get(f"chaos/victim{i}:{tag}", [])
        assert got == list(range(1, len(got) + 1)), "a killed publisher's logged events must be a gap-free prefix"
        assert 0 < len(got) < 200_000
    _all_lines_parse(log)
    c = counters(daemon)
    assert "bus_gaps_total" not in c and not any(k.startswith("bus_events_malformed_total") for k in c)


def test_a_stopped_subscriber_sees_every_loss_as_a_gap(daemon: Env,
                                                       streams: Callable[..., StreamFollower]) -> None:
    """SIGSTOP the stream while 4 publishers overflow its queues; after SIGCONT it must account for all."""
    stream = streams(daemon)
    stream.wait_streaming()
    stream.proc.send_signal(signal.SIGSTOP)
    endpoint = bus_endpoint(daemon, "bus.in")
    per = 70_000  # 4 x 70k overflows the broker's XPUB (100k) plus the stream's SUB (100k) queues
    srcs = [f"chaos/flood{i}:{os.getpid()}" for i in range(4)]
    pubs = [spawn_publisher(daemon, endpoint, src, per) for src in srcs]
    try:
        for pub in pubs:
            _, err = pub.communicate(timeout=120)
            assert pub.returncode == 0, err
        wait_until(lambda: counters(daemon).get("subscription_events_total{kind=tick}", 0) >= 4 * per,
                   timeout=60, interval=0.5, what="the log writer to take the whole flood")
    finally:
        stream.proc.send_signal(signal.SIGCONT)

    def accounted() -> bool:
        stream.read()
        return all(stream.accounted(src) >= per for src in srcs)

    wait_until(accounted, timeout=60, interval=0.05, what="the stream to account for every event")
    summary = stream.stop()
    missing = 0
    for src in srcs:
        seqs = stream.seqs.get(src, [])
        assert len(seqs) + stream.missing.get(src, 0) == per
        assert seqs == sorted(seqs)
        missing += stream.missing.get(src, 0)
    assert missing > 0, "the flood should have overflowed the stopped subscriber"
    assert stream_missing(summary) == missing
    print(f"stopped subscriber: {missing} of {4 * per} events lost, all reported as gaps")


def stream_missing(summary: str) -> int:
    """M from the stream's last line: "stream ended: N events, G gaps (M missed), K malformed"."""
    match = re.search(r"stream ended: \d+ events, \d+ gaps \((\d+) missed\)", summary)
    assert match, summary
    return int(match.group(1))


def test_a_sigkilled_daemon_then_a_hand_made_torn_line_are_repaired_at_restart(env: Env) -> None:
    """The daemon SIGKILLed mid-burst; then a torn line written by hand (the real tear,
    a writer killed inside write(2), is the next test's)."""
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5})
    first = env.start("--skip-preflight")
    endpoint = bus_endpoint(env, "bus.in")
    log = _events_log(env)
    pids = env.tree_pids() | {first["pid"]}
    burst = spawn_publisher(env, endpoint, f"chaos/burst:{os.getpid()}", 500_000)
    wait_until(lambda: log.stat().st_size > 2_000_000, timeout=30, interval=0.05,
               what="the log writer to be busy")
    os.kill(first["pid"], signal.SIGKILL)
    wait_until(lambda: not alive(pids), timeout=10, what="the tree to die with its root")
    burst.kill()
    burst.communicate(timeout=10)

    # a hand-made copy of what a kill inside write(2) can leave behind; the next start must trim it
    torn = b'{"v":1,"ts":"2026-01-01T00:00:00.000000Z","seq":99,"src":"chaos/to'
    with open(log, "ab") as fh:
        fh.write(torn)
    second = env.start("--skip-preflight")
    assert second["pid"] != first["pid"]
    wait_until(lambda: b"daemon_startup" in log.read_bytes()[-20_000:], timeout=10,
               what="the new daemon's startup event")
    startup = [json.loads(line) for line in log_lines(log) if b'"kind":"daemon_startup"' in line][-1]
    assert startup["data"]["log_repaired_bytes"] >= len(torn)
    lines = _all_lines_parse(log)
    seqs = logged_seqs(log, "chaos/burst")[f"chaos/burst:{os.getpid()}"]
    assert seqs == list(range(1, len(seqs) + 1)) and lines > len(seqs)
    assert psutil.pid_exists(second["pid"]) and env.status()["pid"] == second["pid"]


# The daemon's own log writer, as the broker drives it: batches of 2000 events, one write(2) each.
WRITER = """
import sys
from pathlib import Path
from animus.bus.eventlog import EventLog, to_log_line
log = EventLog(Path(sys.argv[1]))
batch = [to_log_line({"v": 1, "ts": 1.0, "seq": i, "src": "chaos/writer", "cat": "chaos", "level": "info",
                      "kind": "tick", "data": {"pad": "x" * 150}}) for i in range(1, 2001)]
print("writing", flush=True)
while True:
    log.write_lines(batch)
"""


def test_a_writer_killed_inside_a_write_leaves_a_torn_line_the_next_start_trims(env: Env) -> None:
    """SIGKILL the log writer (``EventLog.write_lines``) until a kill lands inside a
    write(2) and tears a line; the next ``daemon start`` trims exactly that."""
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5})
    env.start("--skip-preflight")
    log = _events_log(env)
    env.run("daemon", "stop", check=True)  # the writer gets the daemon's own log file
    rng = random.Random()
    for _ in range(30):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log)], stdout=subprocess.PIPE)
        assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
        time.sleep(rng.uniform(0.001, 0.02))  # when to kill it, not synchronisation
        writer.kill()
        writer.communicate(timeout=10)
        with log.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - 65536))
            tail = fh.read()
        if tail and not tail.endswith(b"\n"):  # empty: killed just after a rotation, nothing torn
            break
    else:
        pytest.fail("30 writers killed mid-burst, and not one kill landed inside a write")
    torn = len(tail) - tail.rfind(b"\n") - 1
    assert 0 < torn < len(tail)

    env.start("--skip-preflight")
    wait_until(lambda: b"daemon_startup" in log.read_bytes()[-20_000:], timeout=10,
               what="the new daemon's startup event")
    startup = [json.loads(line) for line in log_lines(log) if b'"kind":"daemon_startup"' in line][-1]
    assert startup["data"]["log_repaired_bytes"] == torn
    _all_lines_parse(log)  # every line whole, in every rotated file too
