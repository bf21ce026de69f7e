"""transport-http end to end: a real daemon, the real plugin, real HTTP on 127.0.0.1.

One daemon serves the whole module (transport-http, web-ui, the default
subject backend), in a project with a first commit so that the ``edit``
workflows get worktrees. Covered: the token (file, 401s, the cookie login),
the bind address and ``animus web open``, REST routes answering what the
control methods answer (subject edits included), a run's diff (delivered,
left in its worktree, none), server-sent events of a running workflow,
Prometheus text, and schemathesis checking the implementation against
``openapi.yaml``.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import schemathesis
from conftest import Env
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from animus.plugins.transports.http.app import OPENAPI_FILE
from animus.testing import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "transports"))
from daemon_env import Transport, daemon_env, first_commit, read_sse, transport  # noqa: E402

WORKFLOWS = """
phases:
  hello:
    mode: command
    idempotency: idempotent
    command: {program: sh, args: [-c, "echo hello-from-phase; sleep 0.2; echo second-line"]}
  gate: {mode: manual, manual: {instructions: "look at it"}}
  write:
    mode: command
    idempotency: idempotent
    command: {program: sh, cwd_mode: task_root, args: [-c, "printf 'new\\n' > README.md; printf 'a note\\n' > notes.txt"]}
workflows:
  - id: hello
    worktree: skip
    phases: [hello]
  - id: gated
    worktree: skip
    phases: [hello, gate]
  - id: edit
    phases: [write]
    post_success: {merge: {strategy: squash, auto_merge: true}}
  - id: edit_kept
    phases: [write]
default_workflow_ref: hello
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("http")
    with daemon_env(base, ["transport-http", "web-ui", "default"], WORKFLOWS, start=False) as e:
        first_commit(e, base, "old\n")
        e.start("--skip-preflight")
        yield e


@pytest.fixture(scope="module")
def http(env: Env) -> Iterator[Transport]:
    with transport(env) as t:
        yield t


def run_workflow(http: Transport, ref: str = "hello", title: str = "over http") -> str:
    reply = http.post("/api/workflows", {"title": title, "workflow_ref": ref})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


def wait_status(env: Env, wf: str, *statuses: str) -> dict[str, Any]:
    return wait_until(lambda: (w := env.call("workflow/get", {"id": wf}))["status"] in statuses and w,
                      timeout=30, what=f"{wf} to reach {statuses}")


# ------------------------------------------------------------------ access

def test_token_file_is_private_and_the_server_binds_loopback(env: Env, http: Transport) -> None:
    token_file = http.state_root / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert len(http.token) >= 32
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", http.url)
    listening = [c for c in psutil.Process(http.pid).net_connections("tcp") if c.status == psutil.CONN_LISTEN]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}
    printed = env.run("web", "open", check=True).stdout.strip()
    assert printed == f"{http.url}/?token={http.token}"
    as_json = env.json("web", "open")
    assert as_json["url"] == printed and as_json["base_url"] == http.url


def test_every_request_needs_the_token(http: Transport) -> None:
    for path in ("/api/status", "/api/workflows", "/metrics", "/api/events", "/", "/openapi.json",
                 "/api/workflows/wf-1/diff"):
        bare = httpx.get(http.url + path, timeout=10)
        assert bare.status_code == 401, path
        assert bare.json()["error"]["code"] == "unauthorized"
        assert bare.headers["www-authenticate"].startswith("Bearer")
    assert httpx.patch(http.url + "/api/subjects/task/TASK-1", json={"priority": "p0"}, timeout=10).status_code == 401
    wrong = httpx.get(http.url + "/api/status", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401
    assert http.get("/api/status").status_code == 200


def test_browser_login_trades_the_url_token_for_a_cookie(http: Transport) -> None:
    with httpx.Client(base_url=http.url, timeout=10) as browser:
        login = browser.get(f"/?token={http.token}")
        assert login.status_code == 303 and login.headers["location"] == "/"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert browser.get("/api/status").status_code == 200  # the cookie alone
        page = browser.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert '<script type="module" src="/ui/app.js">' in page.text  # ES modules, no build step
        script = browser.get("/ui/app.js")
        assert script.status_code == 200 and 'from "./dom.js"' in script.text
        assert script.headers["content-type"].startswith("text/javascript")  # what a module script needs
        assert "EventSource" in browser.get("/ui/dom.js").text
        again = browser.get("/ui/app.js", headers={"if-none-match": script.headers["etag"]})
        assert again.status_code == 304
        assert browser.get("/ui/nope.js").status_code == 404
    assert httpx.get(f"{http.url}/?token=wrong", timeout=10).status_code == 401


def test_webhook_path_is_exempt_from_the_token(http: Transport) -> None:
    reply = httpx.post(http.url + "/webhooks/some-trigger", content=b"{}", timeout=10)
    assert reply.status_code == 503  # not 401: no webhook plugin in this daemon
    assert "webhook" in reply.json()["error"]["message"]


# -------------------------------------------------------------------- REST

def test_rest_routes_answer_what_the_control_methods_answer(env: Env, http: Transport) -> None:
    status = http.get("/api/status").json()
    direct = env.call("daemon/status")
    assert (status["schema"], status["pid"], status["state_root"]) == (direct["schema"], direct["pid"], direct["state_root"])
    assert [n["name"] for n in status["tree"]] == [n["name"] for n in direct["tree"]]
    assert [p["name"] for p in http.get("/api/plugins").json()] == [p["name"] for p in env.call("plugin/list")]
    health = http.get("/api/health").json()
    assert {row["plugin"] for row in health["plugins"]} >= {"transport-http", "web-ui", "default"}
    assert http.get("/api/metrics").json()["counters"]["plugin_disabled_total"] == 0

    wf = run_workflow(http)
    done = wait_status(env, wf, "completed")
    listed = http.get("/api/workflows", params={"limit": 5}).json()
    assert [w["id"] for w in listed] == [w["id"] for w in env.call("workflow/list", {"limit": 5})]
    detail = http.get(f"/api/workflows/{wf}").json()
    assert detail["status"] == done["status"] == "completed"
    assert [p["phase"] for p in detail["phases"]] == ["hello"]
    assert http.get("/api/workflows/stats").json()["by_status"]["completed"] >= 1
    assert any("hello-from-phase" in json.dumps(e) for e in http.get("/api/logs", params={"workflow_id": wf}).json())

    task = http.post("/api/subjects/task", {"title": "from the web", "status": "backlog"})
    assert task.status_code == 201, task.text
    tid = task.json()["id"]
    assert http.post(f"/api/subjects/task/{tid}/status", {"status": "ready"}).json()["status"] == "ready"
    assert http.get(f"/api/subjects/task/{tid}").json()["status"] == "ready"
    assert tid in [t["id"] for t in http.get("/api/subjects/task", params={"status": "ready"}).json()]
    edited = http.client.patch(f"/api/subjects/task/{tid}", json={"priority": "p0", "labels": ["ui"]})
    assert edited.status_code == 200, edited.text
    assert env.json("subject", "get", "--id", tid)["subject"]["priority"] == "p0"
    assert http.client.patch(f"/api/subjects/task/{tid}", json={"colour": "red"}).json()["error"]["message"] \
        .startswith("cannot update field(s) colour")
    assert http.client.patch(f"/api/subjects/task/{tid}", json={}).status_code == 400
    wait_until(lambda: {(e["kind"], e["data"].get("origin")) for e in env.call("daemon/logs", {"cat": "subject", "limit": 50})
                        if e["data"].get("subject_id") == tid} >= {("subject_created", "http"), ("subject_updated", "http")},
               timeout=10, what="the daemon's subject events, saying the changes came over HTTP")
    assert http.post("/api/subjects/task", {"title": "typo", "priorty": "p1"}).status_code == 400

    assert http.get("/api/triggers").json() == env.call("workflow/triggers")
    gone = http.get("/api/workflows/wf-doesnotexist")
    assert gone.status_code == 404 and gone.json()["error"]["fix"] == "animus workflow list"
    assert http.get("/api/workflows", params={"limit": "many"}).status_code == 400
    assert http.get("/api/workflows", params={"status": "sideways"}).status_code == 400
    assert http.post(f"/api/workflows/{wf}/cancel").status_code == 409  # already completed
    assert http.post("/api/triggers/no-such-trigger/fire", {"payload": {}}).status_code == 404
    assert http.post("/api/workflows", {}).status_code == 400


def test_manual_phase_actions_over_rest(env: Env, http: Transport) -> None:
    wf = run_workflow(http, "gated", "needs approval")
    wait_until(lambda: (env.call("workflow/get", {"id": wf}).get("waiting") or "").startswith("approval"),
               timeout=30, what="the approval gate")
    assert http.post(f"/api/workflows/{wf}/approve", {"phase": "nope"}).status_code == 400
    approved = http.post(f"/api/workflows/{wf}/approve", {"phase": "gate", "note": "fine"})
    assert approved.status_code == 200, approved.text
    wait_status(env, wf, "completed")


def test_a_runs_changes_file_by_file_with_what_delivery_did(env: Env, http: Transport) -> None:
    merged, kept = run_workflow(http, "edit", "merged edit"), run_workflow(http, "edit_kept", "kept edit")
    done, left = wait_status(env, merged, "completed"), wait_status(env, kept, "completed")

    diff = http.get(f"/api/workflows/{merged}/diff").json()  # delivered: its worktree is gone
    assert diff["source"] == "commit" and done["worktree"]["removed"]
    assert diff["branch"] == done["worktree"]["branch"] and diff["base"] == done["worktree"]["base"]
    assert diff["head"] == done["delivery"]["commit"] and diff["delivery"]["merge"]["target"] == "main"
    files = {f["path"]: f for f in diff["files"]}
    assert (files["README.md"]["status"], files["README.md"]["added"], files["README.md"]["deleted"]) == ("modified", 1, 1)
    assert "-old\n+new" in files["README.md"]["patch"] and "+a note" in files["notes.txt"]["patch"]
    git_says = subprocess.run(["git", "-C", str(env.project), "diff", "--name-only", diff["base"], diff["head"]],
                              capture_output=True, text=True, check=True, env=env.env).stdout.split()
    assert sorted(files) == git_says

    open_one = http.get(f"/api/workflows/{kept}/diff").json()  # no post_success: the work waits in its worktree
    assert open_one["source"] == "worktree" and not left["worktree"].get("removed")
    assert {f["path"]: f["status"] for f in open_one["files"]} == {"README.md": "modified", "notes.txt": "added"}
    assert open_one["delivery"].get("merge") is None

    in_root = run_workflow(http)  # worktree: skip
    wait_status(env, in_root, "completed")
    refused = http.get(f"/api/workflows/{in_root}/diff")
    assert refused.status_code == 409 and "no branch of its own" in refused.json()["error"]["message"]
    assert http.get("/api/workflows/wf-doesnotexist/diff").status_code == 404


# ------------------------------------------------------------------ stream

def test_server_sent_events_stream_a_workflow_live(env: Env, http: Transport) -> None:
    seen: list[dict[str, Any]] = []
    ready = threading.Event()
    done = threading.Event()
    wf_box: dict[str, str] = {}

    def reader() -> None:
        with http.client.stream("GET", "/api/events", params={"level": "info"}, timeout=60) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            for event in read_sse(stream.iter_lines()):
                seen.append(event)
                if event["kind"] == "stream_ready":
                    ready.set()
                if event["kind"] == "workflow_completed" and event.get("workflow_id") == wf_box.get("id"):
                    done.set()
                    return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert ready.wait(20), "the stream never became live"
    wf_box["id"] = wf = run_workflow(http, title="streamed")
    assert done.wait(30), f"no workflow_completed for {wf}; saw {[e['kind'] for e in seen]}"
    mine = [e for e in seen if e.get("workflow_id") == wf]
    kinds = [e["kind"] for e in mine]
    assert kinds[0] == "workflow_queued" and kinds[-1] == "workflow_completed"
    assert "phase_started" in kinds and "phase_completed" in kinds
    lines = [e["data"]["line"] for e in mine if e["kind"] == "phase_output"]
    assert lines == ["hello-from-phase", "second-line"]
    assert not [e for e in seen if e["kind"] == "stream_gap"]
    by_src: dict[str, list[int]] = {}
    for e in seen:
        if "seq" in e:
            by_src.setdefault(e["src"], []).append(e["seq"])
    assert all(seqs == sorted(seqs) for seqs in by_src.values())

    # a late client catches up from the log, filtered to the one workflow (the log
    # writer may be a few milliseconds behind the live bus: wait for it, with a deadline)
    def replayed() -> list[str]:
        with http.client.stream("GET", "/api/events", params={"workflow": wf, "tail": 500}, timeout=30) as stream:
            replay = []
            for event in read_sse(stream.iter_lines()):
                if event["kind"] == "stream_ready":
                    break
                replay.append(event["kind"])
        return replay

    wait_until(lambda: replayed() == kinds, timeout=10, what="the log replay to hold the whole workflow")
    assert http.get("/api/events", params={"level": "loud"}).status_code == 400


def test_a_slow_client_is_told_what_it_lost_where_it_lost_it() -> None:
    import asyncio

    from animus.bus.subscriber import EventFilter
    from animus.plugins.transports.bushub import Subscription

    async def scenario() -> list[Any]:
        sub = Subscription(EventFilter(cat="phase"), size=2)
        for n in range(1, 6):
            sub.offer({"kind": "phase_output", "seq": n})
        got = [await sub.get(0.1), await sub.get(0.1), await sub.get(0.1)]
        sub.offer({"kind": "phase_output", "seq": 6})
        return got + [await sub.get(0.1), await sub.get(0.01)]

    first, second, gap, after, idle = asyncio.run(scenario())
    assert [first["seq"], second["seq"], after["seq"]] == [1, 2, 6]
    assert gap["kind"] == "stream_gap" and gap["src"] == "client" and gap["missing"] == 3
    assert idle is None
    keep = EventFilter(workflow="wf-1", cat="phase", level="warn")
    assert keep({"workflow_id": "wf-1", "cat": "phase", "level": "error"})
    assert not keep({"workflow_id": "wf-1", "cat": "phase", "level": "info"})
    assert not keep({"workflow_id": "wf-2", "cat": "phase", "level": "error"})
    assert not keep({"workflow_id": "wf-1", "cat": "agent", "level": "error"})


# ----------------------------------------------------------------- metrics

_SAMPLE = re.compile(r'^animus_[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? -?[0-9.e+-]+$')


def test_metrics_in_prometheus_text_format(http: Transport) -> None:
    reply = http.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = reply.text.strip().splitlines()
    for line in lines:
        assert line.startswith("# TYPE animus_") or _SAMPLE.match(line), line
    assert "# TYPE animus_plugin_disabled_total counter" in lines
    assert "animus_plugin_disabled_total 0" in lines
    assert any(line.startswith("animus_subscription_events_total{") for line in lines)


# ----------------------------------------------------------------- contract

# Streams never end, and these create or change real state: they have their own tests above.
_UNFUZZED = re.compile(r"^/api/events$|^/webhooks/|/call$|/fire$|^/api/subjects/\{kind\}(/\{id\}(/status)?)?$|^/api/workflows$")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_implementation_matches_the_openapi_document(http: Transport, mode: GenerationMode) -> None:
    """schemathesis generates requests from the served document and checks every answer against it."""
    schema = schemathesis.openapi.from_dict(http.get("/openapi.json").json())
    schema.config.update(base_url=http.url, headers=http.headers)
    schema.config.generation.update(with_security_parameters=False)  # auth has its own test above
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if _UNFUZZED.search(operation.path) and (operation.method.upper() in ("POST", "PATCH")
                                                 or operation.path == "/api/events"):
            continue

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                  phases=[Phase.explicit, Phase.generate])
        def check(case: Any) -> None:
            case.call_and_validate()

        try:
            check()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.path  # nothing in it that could be invalid
        except (Exception, BaseExceptionGroup) as exc:  # collect all, report together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:600]}")
        checked += 1
    assert checked >= 15
    assert not failures, "\n\n".join(failures)


def test_openapi_document_describes_every_route() -> None:
    import yaml

    from animus.plugins.transports.http.app import create_app
    from animus.plugins.transports.link import DaemonLink

    app = create_app(DaemonLink("ipc:///nowhere/control", "ipc:///nowhere/bus.out"), "token", {}).app.app
    served = {(route.path, method) for route in app.routes for method in (route.methods or ()) if method != "HEAD"}
    served -= {("/favicon.ico", "GET"), ("/ui/{path:path}", "GET")}
    doc = yaml.safe_load(OPENAPI_FILE.read_text())
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented


# ------------------------------------------------------------ (runs last)

def test_restarted_transport_keeps_the_token_and_reports_its_new_url(env: Env, http: Transport) -> None:
    record = http.state_root / "transports" / "transport-http.json"
    env.call("supervisor/stop_child", {"child": "transport-http"}, timeout=30)
    assert not record.exists()  # removed at shutdown: nobody is sent to a dead URL
    stopped = env.run("web", "open")
    assert stopped.returncode == 5 and "no web transport is running" in stopped.stderr
    env.call("supervisor/restart_child", {"child": "transport-http"}, timeout=30)
    with transport(env) as again:
        assert again.token == http.token
        assert again.pid != http.pid
        assert again.get("/api/status").status_code == 200
        assert env.run("web", "open", check=True).stdout.strip() == f"{again.url}/?token={http.token}"
