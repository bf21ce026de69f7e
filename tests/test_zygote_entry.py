"""A worker module that names its entry point is called, not run afresh; its warm-up runs in the zygote.

A real zygote (exec'd, as a supervisor starts one) preloads a probe module
whose body, ``main`` and ``warm`` each write a line naming the process they
ran in. A forked worker must run ``main`` with its arguments and never the
body again (the runner's start saved ~2.4 ms so); the warm-up must run in the
zygote with the request's environment, after the fork, so only the next
worker inherits what it prepared.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from animus.supervision.zygote_handle import Zygote
from animus.testing import wait_until

PROBE = '''
import os, sys

def _say(what):
    with open(os.environ["PROBE_OUT"], "a") as f:
        f.write(what + "\\n")

_say(f"body {os.getpid()}")
PREPARED = None

def main():
    _say(f"main {os.getpid()} {' '.join(sys.argv[1:])} prepared={PREPARED}")

def warm(env):
    global PREPARED
    PREPARED = env["PROBE_RUN"]
    _say(f"warm {os.getpid()} {env['PROBE_RUN']}")

ZYGOTE_MAIN = main
ZYGOTE_WARM = warm
'''


def test_entry_point_is_called_and_warm_up_runs_in_the_zygote(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zygote_entry_probe.py").write_text(PROBE)
    out = tmp_path / "out"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    monkeypatch.setenv("PROBE_OUT", str(out))
    exits: list[tuple[int, int]] = []
    zygote = Zygote(["zygote_entry_probe"], lambda pid, status: exits.append((pid, status)))
    zygote.start()
    try:
        env = {"PROBE_OUT": str(out), "PATH": os.environ["PATH"]}
        first, fd1 = zygote.fork("zygote_entry_probe", ["a", "b"], env | {"PROBE_RUN": "1"}, None)
        wait_until(lambda: out.exists() and "warm" in out.read_text(), timeout=15, what="the warm-up")
        second, fd2 = zygote.fork("zygote_entry_probe", ["c"], env | {"PROBE_RUN": "2"}, None)
        wait_until(lambda: out.read_text().count("main") == 2 and out.read_text().count("warm") == 2,
                   timeout=15, what="both workers and both warm-ups")
        os.close(fd1)
        os.close(fd2)
        zygote_pid = zygote.proc.pid if zygote.proc else -1
        lines = out.read_text().splitlines()
        assert lines.count(f"body {zygote_pid}") == 1 and sum(line.startswith("body") for line in lines) == 1
        assert f"main {first} a b prepared=None" in lines  # forked before any warm-up
        assert f"main {second} c prepared=1" in lines  # inherited what the first fork's warm-up made
        assert f"warm {zygote_pid} 1" in lines and f"warm {zygote_pid} 2" in lines
    finally:
        zygote.stop()


ENV_PROBE = '''
import json, os, subprocess, sys

def main():
    c_env = dict(line.split("=", 1) for line in
                 subprocess.run(["env"], capture_output=True, text=True, check=True).stdout.splitlines())
    with open(os.environ["PROBE_OUT"] + "." + sys.argv[1], "w") as f:
        json.dump({"python": dict(os.environ), "c": c_env}, f)

ZYGOTE_MAIN = main
'''


def test_a_worker_gets_exactly_its_requested_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zygote adopts each worker's environment and a forked worker changes only what differs:
    still, a variable of an earlier worker's, or of the zygote's own, must not leak into the next
    one, in os.environ or in what its commands inherit."""
    (tmp_path / "zygote_env_probe.py").write_text(ENV_PROBE)
    out = tmp_path / "out"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    monkeypatch.setenv("ZYGOTE_OWN_ONLY", "from the zygote's start")
    zygote = Zygote(["zygote_env_probe"], lambda pid, status: None)
    zygote.start()
    try:
        base = {"PROBE_OUT": str(out), "PATH": os.environ["PATH"]}
        # after the first, the zygote is sent only what differs from the last worker's environment;
        # a detached worker (4) keeps the owner its supervisor names, the next one (5) the zygote
        owner = {"ANIMUS_PARENT_PID": "4242"}
        wants = {"1": base | {"ONLY_FIRST": "x", "CHANGED": "one"}, "2": base | {"CHANGED": "two"},
                 "3": base | {"CHANGED": "two", "ONLY_THIRD": "y"}, "4": base | owner, "5": base}
        for name, env in wants.items():
            _, fd = zygote.fork("zygote_env_probe", [name], env, None, detach=name == "4")
            os.close(fd)
            wait_until(lambda n=name: (out.parent / f"out.{n}").exists(), timeout=15, what=f"worker {name}")
        for name, env in wants.items():
            seen = json.loads((out.parent / f"out.{name}").read_text())
            zygote_pid = str(zygote.proc.pid if zygote.proc else -1)
            want = env | ({} if name == "4" else {"ANIMUS_PARENT_PID": zygote_pid})
            assert seen["python"] == want, name
            assert {k: v for k, v in seen["c"].items() if k != "_"} == want, name
    finally:
        zygote.stop()
