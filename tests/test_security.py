"""Security findings (issue 15), each reproduced as an attack against the real CLI or daemon."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import psutil
import pytest
import yaml
import zmq

from animus.bus.codec import pack
from animus.testing import wait_until
from animus.plugins.triggers.signature import sign, sign_standard
from conftest import ANIMUS, FAST_RESTART, Env

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "transports"))
from daemon_env import Transport, daemon_env, transport  # noqa: E402


def _plugin_folder(root: Path, name: str) -> Path:
    folder = root / "plug"
    folder.mkdir(parents=True)
    run = folder / "run.sh"
    run.write_text("#!/bin/sh\nexit 0\n")
    run.chmod(0o755)
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump(
        {"name": name, "role": "provider", "version": "0.0.1", "command": [str(run)]}))
    return folder


@pytest.mark.parametrize("name", ["../../victim", "../victim", "/tmp/victim", "a/b", "..", "Victim", ".hidden", ""])
def test_a_manifest_name_cannot_point_outside_the_plugins_folder(env: Env, tmp_path: Path, name: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    (env.home / "plugins").mkdir(parents=True)
    folder = _plugin_folder(tmp_path / "src", name)
    out = env.run("plugin", "install", str(folder))
    assert out.returncode == 2, out.stderr
    assert "plugin name" in out.stderr and "fix:" in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    assert (victim / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in (env.home / "plugins").iterdir()) in ([], [".plugins.lock"])
    assert not (env.home / "plugins.yaml").exists() or "victim" not in (env.home / "plugins.yaml").read_text()


# -- finding 2: one malformed frame must not silence the control plane -------------------

def _endpoint(env: Env, name: str) -> str:
    from animus.state.scope import Scope

    root = Path(env.call("daemon/status")["state_root"])
    return Scope(project_root=env.project.resolve(), name=root.name, home=env.home, root=root).endpoint(name)


def _counters(env: Env) -> dict[str, float]:
    return env.call("daemon/metrics")["counters"]  # type: ignore[no-any-return]


def test_a_bad_reply_id_on_the_tree_socket_leaves_the_control_plane_answering(daemon: Env) -> None:
    pid = daemon.call("daemon/status")["pid"]
    intruder = zmq.Context.instance().socket(zmq.DEALER)
    intruder.setsockopt(zmq.IDENTITY, b"intruder")
    intruder.setsockopt(zmq.LINGER, 1000)
    intruder.connect(_endpoint(daemon, "tree"))
    try:
        for bad in ([1, 2], {"a": 1}, 1.5, "7", None, True, b"\x01"):
            intruder.send(pack({"type": "reply", "id": bad}))
        intruder.send(pack({"type": "tree", "children": "not a list"}))
        intruder.send_multipart([b"two", b"frames"])
    finally:
        intruder.close()
    wait_until(lambda: sum(v for k, v in _counters(daemon).items() if k.startswith("tree_frames_malformed_total"))
               >= 8, timeout=10, what="the bad tree frames to be counted")
    # health asks every child supervisor over the tree socket: its reader must still be alive
    health = daemon.call("daemon/health", timeout=10)
    assert [row for row in health["plugins"] if row.get("source") == "supervisor"] == []
    out = daemon.run("daemon", "health", "--json", timeout=30)
    assert out.returncode == 0, out.stderr
    assert daemon.call("daemon/status", timeout=5)["pid"] == pid


def test_control_requests_of_the_wrong_shape_answer_invalid_input(daemon: Env) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(_endpoint(daemon, "control"))
    try:
        sent = [b"\xc1garbage", pack({"id": [1], "method": "daemon/status"}),
                pack({"id": 5, "method": "daemon/logs", "params": {"limit": "many"}}),
                pack({"id": 6, "method": "daemon/logs", "params": [1, 2]}),
                pack({"id": 7, "method": "plugin/call", "params": {"name": "x", "method": "y", "timeout": "soon"}})]
        for frame in sent:
            sock.send(frame)
        replies = []
        while len(replies) < len(sent) and sock.poll(10_000):
            replies.append(msgpack.unpackb(sock.recv(), raw=False))
    finally:
        sock.close()
    assert len(replies) == len(sent), "every frame gets an answer"
    assert all(r["error"]["code"] == "invalid_input" for r in replies), replies
    assert sorted(r["id"] for r in replies if r["id"] is not None) == [5, 6, 7]
    assert "limit" in next(r for r in replies if r["id"] == 5)["error"]["message"]


def test_a_crashing_daemon_task_is_logged_restarted_then_given_up() -> None:
    from animus.supervision.tasks import TaskOwner
    from animus.testing import FakeClock

    events: list[tuple[str, dict[str, Any]]] = []
    gave_up: list[str] = []
    runs = {"flaky": 0, "broken": 0}

    class Log:
        def __getattr__(self, level: str) -> Any:
            return lambda msg, **kw: events.append((f"log.{level}", {"msg": msg, **kw}))

    async def main() -> None:
        owner = TaskOwner(Log(), lambda kind, level, data: events.append((kind, data)),
                          lambda name, reason: gave_up.append(name), intensity=3, period=10, clock=FakeClock())
        done = asyncio.Event()

        async def flaky() -> None:
            runs["flaky"] += 1
            if runs["flaky"] < 3:
                raise TypeError("unhashable type: 'list'")
            done.set()
            await asyncio.Event().wait()

        async def broken() -> None:
            runs["broken"] += 1
            raise KeyError("boom")

        owner.start("flaky", flaky)
        owner.start("broken", broken)
        await asyncio.wait_for(done.wait(), 5)
        for _ in range(50):
            if gave_up:
                break
            await asyncio.sleep(0.01)
        await owner.close()

    asyncio.run(main())
    assert runs["flaky"] == 3 and gave_up == ["broken"] and runs["broken"] == 4
    crashed = [data for kind, data in events if kind == "task_crashed"]
    assert {"task": "flaky", "reason": "TypeError: unhashable type: 'list'"} in crashed
    assert any(kind == "log.error" and data.get("task") == "broken" for kind, data in events)


# -- finding 5: the network bus inputs are CURVE servers that check who sends what ----------

@pytest.fixture
def tcp_daemon(env: Env) -> Env:
    env.write_config({"restart": FAST_RESTART, "ready_timeout": 5, "bus": {"tcp": ["tcp://127.0.0.1:*"]}})
    env.start("--skip-preflight")
    return env


def _tcp_input(env: Env) -> str:
    log = Path(env.call("daemon/status")["state_root"]) / "logs" / "events.jsonl"
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["kind"] == "daemon_startup":
            return next(ep for ep in event["data"]["bus_in"] if ep.startswith("tcp://"))
    raise AssertionError("no daemon_startup event")


def _logged(env: Env, pred: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    log = Path(env.call("daemon/status")["state_root"]) / "logs" / "events.jsonl"
    return [e for e in map(json.loads, log.read_text().splitlines()) if pred(e)]


def _raw_pub(endpoint: str, keys: Any = None) -> zmq.Socket[Any]:
    from animus.bus.curve import secure_client

    sock = zmq.Context.instance().socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        secure_client(sock, endpoint, keys)
    sock.connect(endpoint)
    return sock


def test_tcp_bus_input_refuses_strangers_spoofed_sources_and_oversized_frames(tcp_daemon: Env) -> None:
    from animus.bus.curve import ClientKeys
    from animus.bus.envelope import make_event

    env = tcp_daemon
    endpoint = _tcp_input(env)
    server_key = (Path(env.call("daemon/status")["state_root"]) / "keys" / "daemon.key").read_text().strip()
    spoof = make_event("runner/wf-1:1", 1, time.time(), "workflow", "workflow_completed", "info", {})
    # a stranger with no key, and one with a key the daemon never saw: no handshake, nothing delivered
    plain = _raw_pub(endpoint)
    stranger = _raw_pub(endpoint, ClientKeys.new(server_key))
    for sock in (plain, stranger):
        assert not sock.poll(1000), "a stranger got the broker's subscription"
        sock.close()

    def refused() -> bool:
        c = _counters(env)
        failed = sum(v for k, v in c.items() if k.startswith("tcp_handshakes_refused_total{domain=animus-bus,reason=")
                     and "unknown_key" not in k)
        return failed >= 2 and c.get("tcp_handshakes_refused_total{domain=animus-bus,reason=unknown_key}", 0) >= 1

    wait_until(refused, timeout=10, what="both refused handshakes to be counted")
    # an authorized client may publish only as remote/<its name>
    out = subprocess.run([sys.executable, "-m", "animus.bus.curve", "new-client", "ci"], cwd=env.project,
                         env=env.env, capture_output=True, text=True, timeout=30, check=True)
    exported = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
    keys = ClientKeys(*(exported[name].strip("'") for name in ("ANIMUS_CURVE_SERVER_KEY",
                                                                   "ANIMUS_CURVE_PUBLIC_KEY", "ANIMUS_CURVE_SECRET_KEY")))
    client = _raw_pub(endpoint, keys)
    try:
        assert client.poll(10_000), "an authorized client got no subscription"
        client.recv()
        client.send_multipart([b"workflow", pack(spoof)])  # as a runner: refused
        client.send_multipart([b"workflow", pack({**spoof, "src": "remote/ci:1", "seq": 1})])  # its own name
        client.send_multipart([b"fuzz", b"x" * (2 * 1024 * 1024)])  # oversized: the connection is dropped
        wait_until(lambda: _counters(env).get("bus_tcp_disconnects_total", 0) >= 1, timeout=10,
                   what="the oversized frame to drop its connection")
        good = make_event("remote/ci:1", 2, time.time(), "fuzz", "after_oversize")
        client.send_multipart([b"fuzz", pack(good)])  # queued until the client has reconnected
        wait_until(lambda: _logged(env, lambda e: e["kind"] == "after_oversize"), timeout=10,
                   what="the client's good event after its reconnect")
    finally:
        client.close()
    c = _counters(env)
    assert c.get("bus_events_refused_total{reason=src}", 0) >= 1
    assert c.get("workflow_runs_total{status=completed}", 0) == 0  # neither the spoof nor remote/ci moved it
    assert not _logged(env, lambda e: e["src"] == "runner/wf-1:1")
    assert _logged(env, lambda e: e["src"] == "remote/ci:1" and e["kind"] == "workflow_completed")
    assert not _logged(env, lambda e: len(json.dumps(e)) > 1024 * 1024)


def test_a_non_loopback_bus_input_needs_the_explicit_setting(env: Env) -> None:
    env.write_config({"bus": {"tcp": ["tcp://0.0.0.0:5570"]}})
    out = env.run("daemon", "start", "--skip-preflight")
    assert out.returncode == 2, out.stderr
    assert "bus.allow_non_loopback: true" in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    from animus.workflow.remote.ray_config import RunnersConfigError, parse_runners

    with pytest.raises(RunnersConfigError) as err:
        parse_runners({"backend": "ray", "ray": {"daemon_address": "10.0.0.2"}})
    assert err.value.key == "runners.ray.daemon_address" and "allow_non_loopback: true" in err.value.message
    assert parse_runners({"backend": "ray", "ray": {"daemon_address": "10.0.0.2", "allow_non_loopback": True}})


# -- finding 6: secrets stay in environments, never on disk or on the bus --------------------

SENTINELS = {"ANTHROPIC_API_KEY": "sk-ant-sentinel-0001",  # sensitive in the claude manifest (and by its name)
             "ACME_ACCOUNT": "acme-sentinel-0002",  # sensitive only because a manifest says so
             "DEPLOY_TOKEN": "deploy-sentinel-0003"}  # sensitive by its name; the workflow uses it
LEAKY = """
phases:
  deploy:
    mode: command
    idempotency: idempotent
    command:
      program: sh
      args: [-c, "env > {envfile}; echo deploying with $DEPLOY; echo arg=${DEPLOY_TOKEN}"]
      env: {DEPLOY: "${DEPLOY_TOKEN}"}
workflows:
  - id: leaky
    phases: [deploy]
default_workflow_ref: leaky
"""


def _leaky_plugin(env: Env) -> Path:
    """A provider that dies printing its secrets on stderr (which becomes last_error)."""
    folder = env.home.parent / "leaky"
    folder.mkdir()
    run = folder / "run.sh"
    run.write_text('#!/bin/sh\necho "fatal: login $ACME_ACCOUNT / $ANTHROPIC_API_KEY refused" >&2\nexit 3\n')
    run.chmod(0o755)
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump({
        "name": "leaky", "role": "provider", "version": "0.0.1", "command": [str(run)],
        "env_required": [{"name": "ACME_ACCOUNT", "sensitive": True}, {"name": "ANTHROPIC_API_KEY", "sensitive": True}]}))
    return folder


def test_a_secret_in_the_environment_never_reaches_animus_home_or_the_bus(env: Env, tmp_path: Path) -> None:
    env.env.update(SENTINELS)
    envfile = tmp_path / "command.env"
    env.write_config({"restart": FAST_RESTART, "interval_secs": 0.2})
    env.write_workflows(LEAKY.replace("{envfile}", str(envfile)))
    env.run("plugin", "install-defaults", "--include-subjects", check=True)
    env.run("plugin", "install", str(_leaky_plugin(env)), check=True)
    env.start()
    stream = subprocess.Popen([*ANIMUS, "daemon", "stream", "--json"], cwd=env.project, env=env.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert stream.stderr is not None and "streaming events" in stream.stderr.readline()
        tid = env.json("subject", "create", "--title", "deploy", "--status", "ready")["subject"]["id"]
        wf = env.json("workflow", "run", "--task-id", tid, "--workflow", "leaky")["workflow_id"]
        wait_until(lambda: env.call("workflow/get", {"id": wf})["status"] == "completed", timeout=30,
                   what="the deploy workflow to complete")
        wait_until(lambda: (env.node("leaky") or {}).get("state") == "disabled", timeout=30,
                   what="the leaky plugin to spend its restart budget")
        logged = (Path(env.status()["state_root"]) / "logs" / "events.jsonl").read_text()
        env.run("daemon", "stop", check=True)
    finally:
        stream.send_signal(signal.SIGINT)
        streamed = stream.communicate(timeout=20)[0]
    # the command got its declared secret, and nothing it did not ask for
    command_env = dict(line.split("=", 1) for line in envfile.read_text().splitlines() if "=" in line)
    assert command_env["DEPLOY"] == SENTINELS["DEPLOY_TOKEN"]
    assert "ANTHROPIC_API_KEY" not in command_env and "ACME_ACCOUNT" not in command_env
    # what it printed, and what the leaky plugin printed, arrived masked
    assert "deploying with [REDACTED:DEPLOY_TOKEN]" in streamed and "arg=[REDACTED:DEPLOY_TOKEN]" in streamed
    assert "[REDACTED:ACME_ACCOUNT]" in logged and "[REDACTED:ANTHROPIC_API_KEY]" in logged
    for value in SENTINELS.values():
        assert value not in streamed, value
        leaks = [str(p) for p in env.home.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]
        assert leaks == [], f"{value} written to {leaks}"


# -- finding 3: the webhook reads at most its limit and starts one run per delivery ----------

HOOK_SECRET = "hook-secret-for-tests"
HOOKS = f"""
phases:
  note: {{mode: command, idempotency: idempotent, command: {{program: "true"}}}}
workflows:
  - id: note
    phases: [note]
default_workflow_ref: note
triggers:
  - {{id: hook, type: webhook, config: {{secret: {HOOK_SECRET}}}}}
"""


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, Transport, Transport]]:
    with daemon_env(tmp_path_factory.mktemp("hooks"), ["webhook", "transport-http", "transport-graphql"],
                    HOOKS) as env:
        with transport(env) as http, transport(env, "transport-graphql") as graphql:
            yield env, http, graphql


def _runs_by_webhook(env: Env) -> list[dict[str, Any]]:
    return [w for w in env.call("workflow/list", {"limit": 200}) if w["trigger_source"] == "webhook"]


def test_a_chunked_oversized_webhook_is_cut_off_while_it_streams(hooks: tuple[Env, Transport, Transport]) -> None:
    env, http, _ = hooks
    proc = psutil.Process(http.pid)
    before = proc.memory_info().rss
    host, port = http.url.removeprefix("http://").rsplit(":", 1)
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"POST /webhooks/hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (1 << 16, b"a" * (1 << 16))
        try:
            while sent < 64 << 20:  # 64 MiB unless the server hangs up first
                conn.sendall(chunk)
                sent += 1 << 16
        except OSError:
            pass  # it stopped reading and closed: the point
        conn.settimeout(10)
        reply = b""
        try:
            while b"\r\n\r\n" not in reply:
                data = conn.recv(65536)
                if not data:
                    break
                reply += data
        except OSError:
            pass
    assert reply.startswith(b"HTTP/1.1 413"), (reply[:200], sent)
    assert proc.memory_info().rss - before < 32 << 20  # it never buffered the body
    assert _runs_by_webhook(env) == []
    assert http.get("/api/status").status_code == 200  # and it still serves


def test_a_replayed_delivery_starts_one_run(hooks: tuple[Env, Transport, Transport]) -> None:
    env, http, _ = hooks
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": "replay-1",
               "X-Hub-Signature-256": sign(HOOK_SECRET, body)}
    first = httpx.post(f"{http.url}/webhooks/hook", content=body, headers=headers, timeout=15)
    again = httpx.post(f"{http.url}/webhooks/hook", content=body, headers=headers, timeout=15)
    assert first.status_code == 202 and first.json()["accepted"] is True, first.text
    assert again.status_code == 200 and again.json() == {"accepted": False, "duplicate": True, "trigger_id": "hook",
                                                         "delivery": "replay-1"}
    wait_until(lambda: len(_runs_by_webhook(env)) == 1, timeout=20, what="the delivery's one run")
    # the record survives the plugin's restart (it is in the state root, not in memory)
    env.call("supervisor/restart_child", {"child": "webhook"})
    wait_until(lambda: env.node("webhook")["state"] == "running", timeout=20, what="the webhook plugin to return")
    later = wait_until(lambda: (r := httpx.post(f"{http.url}/webhooks/hook", content=body, headers=headers,
                                                timeout=15)).status_code != 503 and r, timeout=20,
                       what="the restarted plugin to answer")
    assert later.status_code == 200 and later.json()["duplicate"] is True
    assert len(_runs_by_webhook(env)) == 1


def test_a_stale_signed_timestamp_and_an_unknown_id_look_like_a_bad_signature(
        hooks: tuple[Env, Transport, Transport]) -> None:
    env, http, _ = hooks
    body = b'{"kind": "ping"}'

    def standard(ts: float, msg_id: str, trigger: str = "hook") -> httpx.Response:
        stamp = str(int(ts))
        return httpx.post(f"{http.url}/webhooks/{trigger}", content=body, timeout=15, headers={
            "Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": stamp,
            "webhook-signature": sign_standard(HOOK_SECRET, msg_id, stamp, body)})

    stale = standard(time.time() - 3600, "msg-stale")
    bad = httpx.post(f"{http.url}/webhooks/hook", content=body, timeout=15,
                     headers={"X-Hub-Signature-256": sign("not-the-secret", body)})
    unknown = httpx.post(f"{http.url}/webhooks/no-such-hook", content=body, timeout=15,
                         headers={"X-Hub-Signature-256": sign(HOOK_SECRET, body)})
    assert stale.status_code == bad.status_code == unknown.status_code == 401
    assert stale.content == bad.content == unknown.content
    fresh = standard(time.time(), "msg-fresh")
    assert fresh.status_code == 202, fresh.text


def test_authenticated_routes_limit_bodies_and_graphql_limits_depth(hooks: tuple[Env, Transport, Transport]) -> None:
    _, http, graphql = hooks
    big = {"title": "x" * (2 << 20)}
    assert http.post("/api/workflows", big).status_code == 413
    assert graphql.client.post("/graphql", json={"query": "{ a }", "pad": "x" * (2 << 20)}).status_code == 413
    nested = "{ status { tree { " + "children { " * 10 + "name" + " }" * 12 + " }"  # Process.children recurses
    deep = graphql.client.post("/graphql", json={"query": nested})
    assert deep.status_code == 400 and "deeper than 10" in deep.text, deep.text
    shallow = graphql.client.post("/graphql", json={"query": "{ status { tree { name children { name } } } }"})
    assert shallow.status_code == 200 and shallow.json()["data"]["status"]["tree"], shallow.text


def _response(conn: socket.socket) -> tuple[bytes, dict[bytes, bytes]]:
    """One HTTP/1.1 response read off a raw socket: its status line and its headers (body read, dropped)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"the server closed the connection before answering: {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    status, *lines = head.split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines)}
    while len(rest) < int(headers.get(b"content-length", b"0")):
        rest += conn.recv(65536)
    return status, headers


def test_a_413_before_the_body_leaves_the_connection_usable(hooks: tuple[Env, Transport, Transport]) -> None:
    """A body declared over the limit is answered 413 before a byte of it is sent; the client may then
    send it (the server reads and drops it: closing with unread bytes would reset the connection and
    could lose the 413) and go on with its next request. A huge one, or one waiting for 100 Continue,
    gets its 413 and the connection closes."""
    _, http, _ = hooks
    host, port = http.url.removeprefix("http://").rsplit(":", 1)
    auth = f"Authorization: Bearer {http.token}\r\n".encode()

    def post(conn: socket.socket, size: int, extra: bytes = b"") -> tuple[bytes, dict[bytes, bytes]]:
        conn.sendall(b"POST /api/workflows HTTP/1.1\r\nHost: x\r\n" + auth + extra +
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size)
        return _response(conn)

    with socket.create_connection((host, int(port)), timeout=10) as conn:
        status, headers = post(conn, 2 << 20)
        assert status.startswith(b"HTTP/1.1 413") and headers.get(b"connection") != b"close", (status, headers)
        conn.sendall(b"x" * (2 << 20))  # the declared body, after its answer: read and dropped
        conn.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        status, _ = _response(conn)
        assert status.startswith(b"HTTP/1.1 200"), status
    with socket.create_connection((host, int(port)), timeout=10) as conn:  # chunked, 2 MiB: read to its end
        chunk = b"%x\r\n%s\r\n" % (1 << 16, b"a" * (1 << 16))
        conn.sendall(b"POST /webhooks/hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     chunk * 32 + b"0\r\n\r\n")
        status, headers = _response(conn)
        assert status.startswith(b"HTTP/1.1 413") and headers.get(b"connection") != b"close", (status, headers)
        conn.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        assert _response(conn)[0].startswith(b"HTTP/1.1 200")
    for size, extra in ((64 << 20, b""), (2 << 20, b"Expect: 100-continue\r\n")):
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            status, headers = post(conn, size, extra)
            assert status.startswith(b"HTTP/1.1 413") and headers.get(b"connection") == b"close", (status, extra)
            assert conn.recv(1) == b""  # closed, with no body of ours left unread


# -- finding 4 and the archive checks: what an install refuses ---------------------------------

SIGSTORE = next((p / "shared" / "fixtures" / "sigstore" for p in Path(__file__).resolve().parents[1:4]
                 if (p / "shared" / "fixtures" / "sigstore").is_dir()), Path("/nonexistent"))


def _plugin_tarball(root: Path, version: str = "0.0.1") -> Path:
    folder = root / f"tarsrc-{version}" / "tarred"
    folder.mkdir(parents=True)
    (folder / "run.sh").write_text("#!/bin/sh\nexit 0\n")
    (folder / "animus-plugin.yaml").write_text(yaml.safe_dump(
        {"name": "tarred", "role": "provider", "version": version, "command": ["sh", "{plugin_dir}/run.sh"]}))
    tarball = root / "tarred.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="tarred")
    return tarball


def _installed(env: Env) -> dict[str, Any]:
    path = env.home / "plugins.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("plugins", {}) if path.exists() else {}


@pytest.mark.parametrize("bundle", ["junk", "another-artifact's"])
def test_an_invalid_bundle_is_refused_even_under_warn(env: Env, tmp_path: Path, bundle: str) -> None:
    tarball = _plugin_tarball(tmp_path)
    beside = tarball.with_name(tarball.name + ".sigstore")
    if bundle == "junk":
        beside.write_text('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "junk": true}')
    else:
        if not SIGSTORE.is_dir():
            pytest.skip("sigstore fixtures not found")
        beside.write_bytes((SIGSTORE / "bundle_v3_github.whl.sigstore").read_bytes())
    out = env.run("plugin", "install", str(tarball))  # the default policy: warn
    assert out.returncode == 2, out.stdout + out.stderr
    assert "signature verification failed" in out.stderr and "policy: warn" in out.stderr
    assert "tarred" not in _installed(env)
    assert not (env.home / "plugins" / "tarred").exists()


def test_update_keeps_the_policy_the_plugin_was_installed_under(env: Env, tmp_path: Path) -> None:
    tarball = _plugin_tarball(tmp_path, "0.0.1")
    env.run("plugin", "install", str(tarball), check=True)
    registry = env.home / "plugins.yaml"
    data = yaml.safe_load(registry.read_text())
    assert data["plugins"]["tarred"]["signature"]["policy"] == "warn"
    data["plugins"]["tarred"]["signature"]["policy"] = "strict"  # as a strict install records it
    registry.write_text(yaml.safe_dump(data))
    tarball.unlink()
    _plugin_tarball(tmp_path / "v2", "0.0.2").rename(tarball)  # a new, unsigned build at the same path
    for flags in ([], ["--signature-policy", "disabled"]):  # neither the default nor a weaker flag weakens it
        out = env.run("plugin", "update", "tarred", "--json", *flags)
        report = json.loads(out.stdout.strip().splitlines()[-1])["plugins"]
        assert out.returncode == 5 and report[0]["action"] == "failed", out.stdout + out.stderr
        assert "policy: strict" in report[0]["detail"] or "strict" in report[0]["detail"]
        assert _installed(env)["tarred"]["version"] == "0.0.1"


@pytest.mark.parametrize("kind", ["zip-traversal", "tar-symlink", "tar-traversal"])
def test_an_archive_cannot_write_outside_the_plugin(env: Env, tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "victim.txt"
    archive = tmp_path / ("evil.zip" if kind.startswith("zip") else "evil.tar.gz")
    manifest = yaml.safe_dump({"name": "evil", "role": "provider", "version": "1", "command": ["true"]})
    if kind == "zip-traversal":
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("animus-plugin.yaml", manifest)
            zf.writestr(f"../{'../' * 8}{str(victim).lstrip('/')}", "owned")
    else:
        with tarfile.open(archive, "w:gz") as tar:
            for name, data in (("animus-plugin.yaml", manifest.encode()),):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo("link" if kind == "tar-symlink" else f"../../{victim.name}")
            if kind == "tar-symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(victim)
                tar.addfile(info)
            else:
                info.size = 5
                tar.addfile(info, io.BytesIO(b"owned"))
    out = env.run("plugin", "install", str(archive), "--signature-policy", "disabled")
    assert out.returncode == 2, out.stderr
    assert "would land outside the plugin folder" in out.stderr and str(archive) in out.stderr
    assert not victim.exists() and "evil" not in _installed(env)


# -- the Low items -----------------------------------------------------------------------------

def test_daemon_health_probes_a_transport_while_the_daemon_is_down(env: Env) -> None:
    env.run("plugin", "install", "builtin:transport-http", check=True)
    out = env.run("daemon", "health", "--json", timeout=60)
    rows = json.loads(out.stdout.strip().splitlines()[-1])["plugins"]
    row = next(r for r in rows if r["plugin"] == "transport-http")
    assert row["source"] == "probe" and "ANIMUS_CONTROL" not in str(row.get("last_error"))
    assert row["status"] in ("healthy", "degraded"), row


def test_the_linear_key_goes_only_over_https_or_to_this_machine() -> None:
    from animus.errors import InvalidInput
    from animus.plugins.subjects.linear_client import LinearClient

    for url in ("http://api.example.com/graphql", "ftp://127.0.0.1/x", "http://10.0.0.7:8080/graphql"):
        with pytest.raises(InvalidInput, match="LINEAR_API_URL"):
            LinearClient("lin_api_key", base_url=url)
    LinearClient("lin_api_key", base_url="https://api.linear.app/graphql")
    LinearClient("lin_api_key", base_url="http://127.0.0.1:9/graphql")


def test_the_shared_tmp_socket_folder_must_be_ours(tmp_path: Path) -> None:
    from animus.errors import Unavailable
    from animus.state.scope import _owned_private_dir

    mine = _owned_private_dir(tmp_path / "mine")
    assert mine.is_dir() and (mine.stat().st_mode & 0o777) == 0o700
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "planted").symlink_to(elsewhere)
    with pytest.raises(Unavailable, match="not a directory owned by you"):
        _owned_private_dir(tmp_path / "planted")
    if os.getuid() == 0:  # as root the test can plant a folder owned by someone else
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 4242, 4242)
        with pytest.raises(Unavailable, match="not a directory owned by you"):
            _owned_private_dir(theirs)
