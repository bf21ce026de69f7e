"""Bus throughput and latency, against raw pyzmq measured in the same run.

Throughput: 4 publisher processes (``animus.bus.publisher.Publisher``) send
a full-speed burst through the daemon's broker to one real ``animus daemon
stream --json`` (stdout to a file), while the log writer keeps every event
in ``events.jsonl``. Two raw pyzmq baselines send the same msgpack
envelopes: the same topology (4 PUB processes -> one XSUB/XPUB proxy process
-> one SUB process that decodes, with the broker's, publishers' and
stream's high-water marks), and one PUB process -> one SUB process (HWM
unlimited). Target: Animus / raw >= 0.5, against each.

Latency: one publisher at 1 000 events/s, one stream-style subscriber
(SUB on ``bus.out``, decode, validate, seq check) measuring ``now - ts``;
beside it raw pyzmq PUB -> XSUB/XPUB proxy -> SUB. Target: Animus p99 < 2 ms.

Loss: the raw PUB with ZeroMQ's default high-water mark drops silently; the
Animus stream must account for every event as received or as a reported gap,
and the log must hold all of them.

Run: ``.venv/bin/python bench/bus_throughput.py [--events N] [--publishers K]``.
Every process is a subprocess of this file (``--role ...``), started after
the others proved ready; publishers repeat an end marker until told to stop,
so a dropped tail is seen as a gap instead of a hang.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

TOPIC = b"bench"
SELF = [sys.executable, str(Path(__file__).resolve())]


# -- roles (each runs in its own process) -------------------------------------
def _envelope(src: str, seq: int, kind: str, i: int) -> dict[str, Any]:
    from animus.bus.envelope import make_event

    return make_event(src, seq, time.time(), "bench", kind, data={"i": i})


def _await_go() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit(0)


def _repeat_end_until_stop(send_end: Any) -> None:
    """Publish the end marker every 20 ms until the parent says stop."""
    while True:
        send_end()
        ready, _, _ = select.select([sys.stdin], [], [], 0.02)
        if ready:
            return


def _pace(rate: float, start: float, i: int) -> None:
    if rate > 0:
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the sender, not waiting for a condition


def role_publisher(a: argparse.Namespace) -> None:
    from animus.bus.publisher import Publisher

    pub = Publisher(a.endpoint, a.src)
    if not pub.wait_ready(10):
        raise SystemExit("broker did not answer")
    _await_go()
    start = time.perf_counter()
    for i in range(a.count):
        _pace(a.rate, start, i)
        pub.publish("bench", "tick", data={"i": i})
    sent_in = time.perf_counter() - start
    print(json.dumps({"sent": a.count, "seconds": sent_in}), flush=True)
    _repeat_end_until_stop(lambda: pub.publish("bench", "bench_end"))
    pub.close(linger_ms=0)


def role_raw_pub(a: argparse.Namespace) -> None:
    import msgpack
    import zmq

    sock = zmq.Context.instance().socket(zmq.XPUB)  # a PUB that sees the subscription arrive
    if a.hwm >= 0:
        sock.setsockopt(zmq.SNDHWM, a.hwm)
    sock.connect(a.endpoint)
    if not sock.poll(10_000):
        raise SystemExit("no subscriber")
    sock.recv()
    _await_go()
    start = time.perf_counter()
    packb, src, now = msgpack.packb, a.src, time.time
    for i in range(a.count):
        _pace(a.rate, start, i)
        sock.send_multipart([TOPIC, packb({
            "v": 1, "ts": now(), "seq": i + 1, "src": src, "cat": "bench", "level": "info",
            "kind": "tick", "workflow_id": None, "run_id": None, "phase": None, "data": {"i": i}})])
    print(json.dumps({"sent": a.count, "seconds": time.perf_counter() - start}), flush=True)
    seq = [a.count]

    def end() -> None:
        seq[0] += 1
        sock.send_multipart([TOPIC, msgpack.packb(_envelope(a.src, seq[0], "bench_end", 0))])

    _repeat_end_until_stop(end)
    sock.close(linger=0)


def role_raw_sub(a: argparse.Namespace) -> None:
    """Raw pyzmq receiver: receive, decode, count per publisher."""
    import msgpack
    import zmq

    sock = zmq.Context.instance().socket(zmq.SUB)
    if a.rcvhwm >= 0:
        sock.setsockopt(zmq.RCVHWM, a.rcvhwm)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    (sock.bind if a.bind else sock.connect)(a.endpoint)
    print("ready", flush=True)
    ticks: dict[str, int] = {}
    ended: set[str] = set()
    unpackb = msgpack.unpackb
    while len(ended) < a.expect:
        ev = unpackb(sock.recv_multipart()[1])
        if ev["kind"] == "tick":
            ticks[ev["src"]] = ticks.get(ev["src"], 0) + 1
        elif ev["kind"] == "bench_end":
            ended.add(ev["src"])
    print(json.dumps({"ticks": ticks, "missing": {}, "latencies": []}), flush=True)


def role_raw_proxy(a: argparse.Namespace) -> None:
    import zmq

    ctx = zmq.Context.instance()
    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    xsub.setsockopt(zmq.RCVHWM, 50_000)  # the broker's high-water marks (animus/bus/broker.py)
    xpub.setsockopt(zmq.SNDHWM, 100_000)
    xsub.bind(a.endpoint)
    xpub.bind(a.out)
    print("ready", flush=True)
    zmq.proxy(xsub, xpub)


def role_sub(a: argparse.Namespace) -> None:
    """Stream-style subscriber: decode, validate, per-src seq check, latency."""
    import zmq

    from animus.bus.codec import CodecError, unpack
    from animus.bus.envelope import validate_event

    sock = zmq.Context.instance().socket(zmq.SUB)
    if a.rcvhwm >= 0:
        sock.setsockopt(zmq.RCVHWM, a.rcvhwm)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    (sock.bind if a.bind else sock.connect)(a.endpoint)
    print("ready", flush=True)
    last: dict[str, int] = {}
    ticks: dict[str, int] = {}
    missing: dict[str, int] = {}
    ended: set[str] = set()
    lat: list[float] = []
    while len(ended) < a.expect:
        frames = sock.recv_multipart()
        now = time.time()
        try:
            ev = validate_event(unpack(frames[-1]))
        except (CodecError, ValueError):
            continue
        src, seq = ev["src"], ev["seq"]
        if not src.startswith("bench/"):
            continue
        prev = last.get(src, 0)
        if seq > prev + 1:
            missing[src] = missing.get(src, 0) + min(seq - 1, a.count) - min(prev, a.count)
        last[src] = max(seq, prev)
        if ev["kind"] == "tick":
            ticks[src] = ticks.get(src, 0) + 1
            lat.append(now - ev["ts"])
        elif ev["kind"] == "bench_end":
            ended.add(src)
    print(json.dumps({"ticks": ticks, "missing": missing, "latencies": lat}), flush=True)


ROLES = {"publisher": role_publisher, "raw-pub": role_raw_pub, "raw-proxy": role_raw_proxy,
         "raw-sub": role_raw_sub, "sub": role_sub}


# -- the driver ---------------------------------------------------------------
def _spawn(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=cwd)
    line = proc.stdout.readline() if proc.stdout else ""
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"{argv[2:]} did not start: {line!r}")
    return proc


def _tell(procs: list[subprocess.Popen[str]], word: str) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(word + "\n")
        p.stdin.flush()


def _finish(procs: list[subprocess.Popen[str]]) -> None:
    _tell(procs, "stop")
    for p in procs:
        p.wait(30)


def _pub_args(role: str, endpoint: str, src: str, count: int, rate: float = 0, hwm: int = -1) -> list[str]:
    return [*SELF, "--role", role, "--endpoint", endpoint, "--src", src, "--count", str(count),
            "--rate", str(rate), "--hwm", str(hwm)]


def _sub_args(endpoint: str, expect: int, count: int, bind: bool) -> list[str]:
    return [*SELF, "--role", "sub", "--endpoint", endpoint, "--expect", str(expect),
            "--count", str(count), *(["--bind"] if bind else [])]


def raw_pubsub(tmp: Path, count: int, hwm: int) -> tuple[float, int]:
    """One raw PUB process -> one SUB process: (events/s, events lost)."""
    ep = f"ipc://{tmp / f'raw-{hwm}.sock'}"
    sub = _spawn([*SELF, "--role", "raw-sub", "--endpoint", ep, "--rcvhwm", str(hwm), "--bind"])
    pub = _spawn(_pub_args("raw-pub", ep, "bench/raw:0", count, hwm=hwm))
    t0 = time.perf_counter()
    _tell([pub], "go")
    assert sub.stdout is not None
    result = json.loads(sub.stdout.readline())
    elapsed = time.perf_counter() - t0
    _finish([pub])
    sub.wait(10)
    received = sum(result["ticks"].values())
    return count / elapsed, count - received


def raw_topology(tmp: Path, count: int, publishers: int) -> tuple[float, int]:
    """Animus's topology in raw pyzmq: K PUB processes -> XSUB/XPUB proxy process -> one SUB
    process, with the HWMs Animus uses (publisher 200 000; broker 50 000 in, 100 000 out; stream
    100 000): (events/s, events lost)."""
    ins, outs = f"ipc://{tmp / 'topo.in'}", f"ipc://{tmp / 'topo.out'}"
    proxy = _spawn([*SELF, "--role", "raw-proxy", "--endpoint", ins, "--out", outs])
    try:
        sub = _spawn([*SELF, "--role", "raw-sub", "--endpoint", outs, "--rcvhwm", "100000",
                      "--expect", str(publishers)])
        per = count // publishers
        pubs = [_spawn(_pub_args("raw-pub", ins, f"bench/topo{i}", per, hwm=200_000)) for i in range(publishers)]
        t0 = time.perf_counter()
        _tell(pubs, "go")
        assert sub.stdout is not None
        result = json.loads(sub.stdout.readline())
        elapsed = time.perf_counter() - t0
        _finish(pubs)
        sub.wait(10)
    finally:
        proxy.kill()
        proxy.wait()
    return per * publishers / elapsed, per * publishers - sum(result["ticks"].values())


def _count_stream(path: Path, srcs: list[str], count: int) -> dict[str, Any]:
    ticks = {s: 0 for s in srcs}
    missing = {s: 0 for s in srcs}
    ended = set()
    with open(path, "rb") as fh:
        for raw in fh:
            if b'"src":"bench/' not in raw:
                continue
            rec = json.loads(raw)
            src = rec["src"]
            if rec.get("kind") == "stream_gap":
                missing[src] += max(0, min(rec["to_seq"], count) - rec["from_seq"] + 1)
            elif rec.get("kind") == "tick":
                ticks[src] += 1
            elif rec.get("kind") == "bench_end":
                ended.add(src)
    return {"ticks": ticks, "missing": missing, "ended": ended}


def animus_throughput(d: Any, run: int, count: int, publishers: int) -> dict[str, Any]:
    from _daemon import ANIMUS

    out_path = d.state_root.parent / f"stream-{run}.out"
    err_path = d.state_root.parent / f"stream-{run}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err_fh:
        stream = d.popen([*ANIMUS, "daemon", "stream", "--json"], stdout=out, stderr=err_fh)
        deadline = time.monotonic() + 30
        while b"streaming events" not in err_path.read_bytes():
            if time.monotonic() > deadline or stream.poll() is not None:
                raise SystemExit(f"stream did not subscribe: {err_path.read_text()}")
            time.sleep(0.01)
    per = count // publishers
    prefix = f"bench/r{run}p"
    srcs = [f"{prefix}{i}:{os.getpid()}" for i in range(publishers)]
    ep = d.endpoint("bus.in")
    pubs = [_spawn(_pub_args("publisher", ep, s, per)) for s in srcs]
    t0 = time.perf_counter()
    _tell(pubs, "go")
    elapsed = _wait_end_markers(out_path, publishers)
    elapsed = elapsed - t0
    _finish(pubs)
    stream.terminate()
    stream.wait(10)
    counted = _count_stream(out_path, srcs, per)
    log_ticks = _log_ticks(d.events_log, prefix, publishers * per)
    return {"rate": publishers * per / elapsed, "sent": publishers * per,
            "received": sum(counted["ticks"].values()),
            "gap_missing": sum(counted["missing"].values()), "log_ticks": log_ticks}


def _wait_end_markers(path: Path, publishers: int) -> float:
    """Follow the stream's output until every publisher's end marker is in; return when."""
    needle = b'"kind":"bench_end"'
    seen: set[str] = set()
    deadline = time.monotonic() + 300
    rest = b""
    with open(path, "rb") as fh:
        while len(seen) < publishers:
            chunk = fh.read()
            if not chunk:
                if time.monotonic() > deadline:
                    raise SystemExit("stream never saw every publisher's end marker")
                time.sleep(0.005)
                continue
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if needle in line:
                    seen.add(json.loads(line)["src"])
    return time.perf_counter()


def _log_ticks(path: Path, prefix: str, expected: int) -> int:
    """Wait (with a deadline) until the log writer has every tick; return the count."""
    needle = f'"src":"{prefix}'.encode()
    deadline = time.monotonic() + 60
    while True:
        n = 0
        for f in [path, *sorted(path.parent.glob(path.name + ".*"))]:
            if f.exists():
                n += sum(1 for line in f.read_bytes().split(b"\n")
                         if needle in line and b'"kind":"tick"' in line)
        if n >= expected or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def _percentiles(lat: list[float]) -> tuple[float, float]:
    ms = sorted(x * 1000 for x in lat)
    q = statistics.quantiles(ms, n=100)
    return q[49], q[98]


def latency(pub_role: str, pub_ep: str, sub_ep: str, count: int, rate: float,
            src: str) -> tuple[float, float]:
    """One publisher at ``rate`` -> one stream-style subscriber: (p50, p99) in ms."""
    sub = _spawn(_sub_args(sub_ep, 1, count, bind=False))
    pub = _spawn(_pub_args(pub_role, pub_ep, src, count, rate=rate, hwm=0))
    _tell([pub], "go")
    assert sub.stdout is not None
    result = json.loads(sub.stdout.readline())
    _finish([pub])
    sub.wait(10)
    return _percentiles(result["latencies"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=sorted(ROLES))
    ap.add_argument("--endpoint")
    ap.add_argument("--out")
    ap.add_argument("--src", default="bench/x")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--hwm", type=int, default=-1)
    ap.add_argument("--rcvhwm", type=int, default=100_000, help="-1: ZeroMQ's default")
    ap.add_argument("--expect", type=int, default=1)
    ap.add_argument("--bind", action="store_true")
    ap.add_argument("--events", type=int, default=200_000, help="events in each throughput burst")
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--latency-events", type=int, default=3000, help="events at 1 000/s per run")
    ap.add_argument("--runs", type=int, default=3, help="alternating raw/animus runs; medians reported")
    ap.add_argument("--only", choices=("throughput", "latency"), help="measure just one of them")
    a = ap.parse_args()
    if a.role:
        ROLES[a.role](a)
        return 0

    from _daemon import running_daemon

    tmp = Path(tempfile.mkdtemp(prefix="animus-raw-"))
    print(f"bus bench: {a.events} events x {a.runs} runs, {a.publishers} publishers; latency at "
          f"1000 ev/s ({a.latency_events} events x {a.runs}); {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    if a.only != "latency":
        _, dflt_lost = raw_pubsub(tmp, a.events, hwm=-1)
        print(f"  raw pyzmq PUB->SUB, default HWM: lost {dflt_lost} of {a.events} "
              f"({100 * dflt_lost / a.events:.0f}%), silently")
    ratios: list[tuple[float, float, int]] = []
    raw_lat: list[tuple[float, float]] = []
    ani_lat: list[tuple[float, float]] = []
    with running_daemon() as d:
        for run in range(a.runs):
            if a.only != "latency":
                _throughput_run(d, tmp, run, a, ratios)
            if a.only != "throughput":
                raw_lat.append(_raw_proxy_latency(tmp, a.latency_events))
                ani_lat.append(latency("publisher", d.endpoint("bus.in"), d.endpoint("bus.out"),
                                       a.latency_events, 1000.0, f"bench/r{run}lat:{os.getpid()}"))
                print(f"  run {run} latency p50/p99 ms: raw via XSUB/XPUB proxy {raw_lat[-1][0]:.3f}/"
                      f"{raw_lat[-1][1]:.3f} | animus pub->broker->sub {ani_lat[-1][0]:.3f}/"
                      f"{ani_lat[-1][1]:.3f}")
    silent = sum(r[2] for r in ratios)
    ok = silent == 0
    verdicts = []
    if ratios:
        topo, direct = statistics.median(r[0] for r in ratios), statistics.median(r[1] for r in ratios)
        print(f"throughput ratio animus/raw (median): {topo:.2f} against the same topology, "
              f"{direct:.2f} against raw PUB->SUB")
        print(f"silent loss (animus stream + log, raw PUB->SUB with raised HWM): {silent}  "
              f"{'ok' if ok else 'MISSED'}")
        verdicts += [f"throughput >= 0.5x raw same topology: {'met' if topo >= 0.5 else 'MISSED'} ({topo:.2f})",
                     f">= 0.5x raw PUB->SUB: {'met' if direct >= 0.5 else 'MISSED'} ({direct:.2f})",
                     f"no silent loss: {'met' if ok else 'MISSED'}"]
    if ani_lat:
        p50 = statistics.median(x[0] for x in ani_lat)
        p99 = statistics.median(x[1] for x in ani_lat)
        rp50 = statistics.median(x[0] for x in raw_lat)
        rp99 = statistics.median(x[1] for x in raw_lat)
        print(f"latency (median of runs) animus p50 {p50:.3f} ms p99 {p99:.3f} ms; raw proxy p50 "
              f"{rp50:.3f} ms p99 {rp99:.3f} ms")
        verdicts.append(f"latency p99 < 2 ms: {'met' if p99 < 2.0 else 'MISSED'} ({p99:.2f} ms)")
    print("targets: " + "; ".join(verdicts))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


def _throughput_run(d: Any, tmp: Path, run: int, a: argparse.Namespace,
                    ratios: list[tuple[float, float, int]]) -> None:
    """The raw runs, then one animus run; appends (ratio to the same topology, ratio to
    PUB->SUB, events lost silently)."""
    raw_rate, raw_lost = raw_pubsub(tmp, a.events, hwm=0)
    topo_rate, topo_lost = raw_topology(tmp, a.events, a.publishers)
    res = animus_throughput(d, run, a.events, a.publishers)
    accounted = res["received"] + res["gap_missing"]
    silent = (res["sent"] - accounted) + (res["sent"] - res["log_ticks"]) + raw_lost
    ratios.append((res["rate"] / topo_rate, res["rate"] / raw_rate, silent))
    print(f"  run {run}: raw PUB->SUB {raw_rate:>8,.0f} ev/s | raw {a.publishers} PUBs->proxy->SUB "
          f"{topo_rate:>8,.0f} ev/s (lost {topo_lost}) | animus {a.publishers} pubs->broker->stream "
          f"{res['rate']:>8,.0f} ev/s (ratios {ratios[-1][0]:.2f}, {ratios[-1][1]:.2f}); stream got "
          f"{res['received']} + gaps {res['gap_missing']} = {accounted}/{res['sent']}, "
          f"events.jsonl {res['log_ticks']}/{res['sent']}")


def _raw_proxy_latency(tmp: Path, count: int) -> tuple[float, float]:
    proxy = _spawn([*SELF, "--role", "raw-proxy", "--endpoint", f"ipc://{tmp / 'px.in'}",
                    "--out", f"ipc://{tmp / 'px.out'}"])
    try:
        p50, p99 = latency("raw-pub", f"ipc://{tmp / 'px.in'}", f"ipc://{tmp / 'px.out'}",
                           count, 1000.0, "bench/rawlat")
    finally:
        proxy.kill()
        proxy.wait()
    return p50, p99


if __name__ == "__main__":
    sys.exit(main())
