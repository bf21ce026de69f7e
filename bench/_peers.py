"""Shared by start_ready.py and idle_memory.py: the bare baseline and the other supervisors.

Not a benchmark itself. ``python bench/_peers.py worker <endpoint>`` is the
bare worker: import zmq and msgpack, connect a DEALER to ``endpoint``, say
hello, then wait to be killed. ``Rendezvous`` is the ROUTER that counts the
hellos. ``supervisors_venv()`` installs circus and supervisor from PyPI into a
cached venv (once; None if pip cannot), and ``circusd``/``supervisord`` run 16
bare workers under each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SELF = Path(__file__).resolve()
VENV = Path(os.environ.get("ANIMUS_BENCH_PEERS_VENV") or Path.home() / ".cache" / "animus-bench" / "supervisors")


def worker(endpoint: str) -> None:
    import msgpack
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.connect(endpoint)
    sock.send(msgpack.packb({"pid": os.getpid()}))
    sock.recv()  # never comes: wait to be killed


class Rendezvous:
    """A ROUTER that waits for N workers' hellos."""

    def __init__(self, folder: Path) -> None:
        import zmq

        self.endpoint = f"ipc://{folder / 'rendezvous'}"
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(self.endpoint)

    def wait(self, count: int, timeout: float = 60) -> set[int]:
        import msgpack

        pids: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(pids) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                raise SystemExit(f"only {len(pids)} of {count} workers said hello within {timeout:g}s")
            pids.add(int(msgpack.unpackb(self.sock.recv_multipart()[-1])["pid"]))
        return pids

    def close(self) -> None:
        self.sock.close(linger=0)


def worker_argv(endpoint: str) -> list[str]:
    return [sys.executable, str(SELF), "worker", endpoint]


def supervisors_venv() -> Path | None:
    """A venv with circusd and supervisord, made once; None when they do not install."""
    if (VENV / "bin" / "circusd").exists() and (VENV / "bin" / "supervisord").exists():
        return VENV
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "circus", "supervisor"], check=True,
                       capture_output=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        return None
    return VENV


@contextmanager
def peer(kind: str, venv: Path, endpoint: str, count: int) -> Iterator[subprocess.Popen[bytes]]:
    """``circusd`` or ``supervisord`` running ``count`` bare workers; stopped (SIGTERM) on exit."""
    folder = Path(tempfile.mkdtemp(prefix=f"animus-bench-{kind}-"))
    command = " ".join(worker_argv(endpoint))
    if kind == "circusd":
        conf = folder / "circus.ini"
        conf.write_text(f"[circus]\nendpoint = ipc://{folder}/ctl\npubsub_endpoint = ipc://{folder}/pub\n"
                        f"statsd = false\n\n[watcher:bare]\ncmd = {command}\nnumprocesses = {count}\n"
                        "copy_env = true\n")
        argv = [str(venv / "bin" / "circusd"), str(conf)]
    else:
        conf = folder / "supervisord.conf"
        conf.write_text(f"[supervisord]\nnodaemon = true\nlogfile = {folder}/s.log\npidfile = {folder}/s.pid\n"
                        f"[unix_http_server]\nfile = {folder}/s.sock\n"
                        f"[program:bare]\ncommand = {command}\nnumprocs = {count}\n"
                        "process_name = %(program_name)s_%(process_num)02d\nstartsecs = 0\n")
        argv = [str(venv / "bin" / kind), "-c", str(conf)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2])
