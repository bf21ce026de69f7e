"""The CLI's fast path: the dispatch table agrees with the Typer app, and its parts hold up.

- every row of ``animus.cli.fast.COMMANDS`` maps each option to the same
  parameter as the Typer command, the body's defaults are Typer's, and its
  required options are Typer's;
- what the table does not cover (``--help``, unknown options, missing or
  malformed values) falls through to Typer;
- a fast command imports none of typer, click, zmq, yaml, psutil, structlog,
  sigstore, and answers "daemon not running" as the Typer app does;
- the pure-Python ZMTP client talks to a real libzmq ROUTER over ipc;
- reading ``.git`` finds the common dir ``git rev-parse`` finds, for the main
  worktree, a subfolder and a linked worktree, and defers to git when a
  ``GIT_*`` variable is set.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import typer.main
import zmq

from animus.bus.codec import pack, unpack
from animus.bus.zmtp import IpcControlClient
from animus.cli.fast import COMMANDS, parse
from animus.cli.main import _app
from animus.errors import InvalidInput, Unavailable
from animus.state.gitroot import common_dir
from animus.state.scope import Scope

HEAVY = ("typer", "click", "rich", "zmq", "yaml", "psutil", "structlog", "sigstore", "dataclasses", "typing")


def _click(group: str, name: str) -> object:
    return typer.main.get_command(_app()).commands[group].commands[name]  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_the_table_row_agrees_with_the_typer_command(path: tuple[str, str]) -> None:
    row = COMMANDS[path]
    module, _, function = row.target.partition(":")
    body = getattr(__import__(module, fromlist=[function]), function)
    signature = inspect.signature(body)
    params = {p.name: p for p in _click(*path).params}  # type: ignore[attr-defined]
    by_opt = {opt: p.name for p in params.values() for opt in p.opts}
    for option, name in {**row.options, **row.flags, "--json": "as_json"}.items():
        assert by_opt.get(option) == name, f"{option}: Typer's parameter is {by_opt.get(option)}, the table's {name}"
        assert name in signature.parameters, f"{row.target} takes no {name}"
    if row.positional:
        assert row.positional in params and row.positional in signature.parameters
    for name, param in params.items():
        given = param.required
        assert given == (name in row.required), f"{name}: required in Typer is {given}"
        if not given and name in signature.parameters and (name in row.options.values() or name in row.flags.values()
                                                              or name in ("as_json", row.positional)):
            assert signature.parameters[name].default == param.default, f"{name}: defaults differ"
    for name, kind in row.types.items():
        assert kind.__name__ in str(signature.parameters[name].annotation)


def test_what_the_table_does_not_cover_goes_to_typer() -> None:
    row = COMMANDS[("subject", "list")]
    assert parse(["--kind", "task", "--limit=3", "--json"], row) == {"kind": "task", "limit": 3, "as_json": True}
    for args in (["--help"], ["-h"], ["--nope"], ["--limit"], ["--limit", "x"], ["extra"]):
        assert parse(args, row) is None, args
    assert parse([], COMMANDS[("subject", "get")]) is None  # --id is required: Typer says so
    wf = COMMANDS[("workflow", "resume")]
    assert parse(["wf-1", "--force"], wf) == {"workflow_id": "wf-1", "force": True}
    assert parse(["wf-1", "wf-2"], wf) is None


def _cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    code = ("import runpy, sys; sys.argv = ['animus'] + sys.argv[1:]; "
            "runpy.run_module('animus.cli.main', run_name='__main__')")
    return subprocess.run([sys.executable, "-X", "importtime", "-c", code, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_a_fast_command_imports_nothing_heavy_and_errors_like_typer(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMUS_")} | {"ANIMUS_HOME": str(tmp_path / "h")}
    out = _cli(env, tmp_path, "daemon", "status", "--json")
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert not set(HEAVY) & imported, set(HEAVY) & imported
    error = json.loads(out.stderr.splitlines()[-1])
    assert out.returncode == 5 and error["error"]["message"].startswith("daemon not running")
    typer_path = subprocess.run([sys.executable, "-c", "import sys; sys.argv = ['animus'] + sys.argv[1:]; "
                                 "from animus.cli.main import _app; _app()(prog_name='animus')",
                                 "daemon", "status", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert typer_path.returncode == 5 and json.loads(typer_path.stderr) == error


# -- the ZMTP client against libzmq ----------------------------------------------------------------


def _router(endpoint: str, replies: int) -> threading.Thread:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)

    def serve() -> None:
        for _ in range(replies):
            ident, raw = sock.recv_multipart()
            req = unpack(raw)
            if req["method"] == "boom":
                reply = {"id": req["id"], "error": InvalidInput("bad thing", fix="do it right").to_dict()}
            else:
                sock.send_multipart([ident, pack({"id": req["id"] + 1000, "result": "stale"})])  # not ours: skipped
                reply = {"id": req["id"], "result": {"echo": req["params"], "big": "x" * 70000}}
            sock.send_multipart([ident, pack(reply)])
        sock.close(linger=0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_the_zmtp_client_talks_to_a_libzmq_router(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/control"
    thread = _router(endpoint, 3)
    client = IpcControlClient(endpoint, timeout=5)
    try:
        for n in range(2):
            result = client.call("echo", {"n": n})
            assert result["echo"] == {"n": n} and len(result["big"]) == 70000  # a long (8-byte size) frame
        with pytest.raises(InvalidInput) as caught:
            client.call("boom")
        assert caught.value.fix == "do it right"
    finally:
        client.close()
    thread.join(5)
    gone = IpcControlClient(f"ipc://{tmp_path}/nothing-here", timeout=1)
    with pytest.raises(Unavailable, match="daemon not running"):
        gone.call("daemon/status")


# -- the scope without git and without dataclasses ---------------------------------------------------


def _git_says(cwd: Path) -> str | None:
    out = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=cwd,
                         capture_output=True, text=True)
    return os.path.realpath(out.stdout.strip()) if out.returncode == 0 else None


def test_reading_dot_git_agrees_with_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    (repo / "sub" / "deeper").mkdir(parents=True)
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    subprocess.run([*git, "worktree", "add", "-q", str(tmp_path / "linked")], check=True)
    (tmp_path / "plain").mkdir()
    for where in (repo, repo / "sub" / "deeper", tmp_path / "linked", tmp_path / "plain"):
        sure, found = common_dir(str(where))
        assert sure and found == _git_says(where), where
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))
    assert common_dir(str(tmp_path / "plain")) == (False, None)  # git's own rules apply: ask git


def test_a_scope_is_an_immutable_value() -> None:
    a = Scope(Path("/p"), "p-1", Path("/h"), Path("/h/p-1"))
    assert a == Scope(project_root=Path("/p"), name="p-1", home=Path("/h"), root=Path("/h/p-1"))
    assert hash(a) == hash(Scope(Path("/p"), "p-1", Path("/h"), Path("/h/p-1"))) and a.warning is None
    with pytest.raises(AttributeError):
        a.name = "other"  # type: ignore[misc]
