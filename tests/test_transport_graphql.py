"""transport-graphql end to end: queries, mutations and a live subscription on a real daemon."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Env
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from animus.testing import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "transports"))
from daemon_env import Transport, daemon_env, transport  # noqa: E402

WORKFLOWS = """
phases:
  speak:
    mode: command
    idempotency: idempotent
    command: {program: sh, args: [-c, "echo graph-line-1; sleep 0.2; echo graph-line-2"]}
  gate: {mode: manual, manual: {instructions: "approve it over GraphQL"}}
workflows:
  - id: speak
    phases: [speak]
  - id: gated
    phases: [gate, speak]
default_workflow_ref: speak
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with daemon_env(tmp_path_factory.mktemp("graphql"), ["transport-graphql", "default"], WORKFLOWS) as e:
        yield e


@pytest.fixture(scope="module")
def gql(env: Env) -> Iterator[Transport]:
    with transport(env, "transport-graphql") as t:
        yield t


def query(gql: Transport, text: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = gql.post("/graphql", {"query": text, "variables": variables or {}})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "errors" not in body, body["errors"]
    return body["data"]  # type: ignore[no-any-return]


def test_the_token_is_required_for_queries_and_websockets(gql: Transport) -> None:
    bare = httpx.post(gql.url + "/graphql", json={"query": "{ status { pid } }"}, timeout=10)
    assert bare.status_code == 401
    with pytest.raises(InvalidStatus):
        connect(gql.url.replace("http", "ws") + "/graphql", subprotocols=["graphql-transport-ws"], open_timeout=10)
    assert gql.get("/schema.graphql").text.startswith('"Any JSON value')


def test_queries_mirror_the_control_methods(env: Env, gql: Transport) -> None:
    data = query(gql, "{ status { pid stateRoot tree { name state children { name state pid } } }"
                      " plugins { name state } health { daemon plugins { plugin status } }"
                      " metrics { counters prometheus } triggers { id } workflowStats }")
    direct = env.call("daemon/status")
    assert data["status"]["pid"] == direct["pid"] and data["status"]["stateRoot"] == direct["state_root"]
    assert [n["name"] for n in data["status"]["tree"]] == [n["name"] for n in direct["tree"]]
    assert {p["name"] for p in data["plugins"]} == {"transport-graphql", "default"}
    assert data["health"]["daemon"]["status"] == "healthy"
    assert "# TYPE animus_plugin_disabled_total counter" in data["metrics"]["prometheus"]
    assert data["triggers"] == []
    assert query(gql, '{ workflow(id: "wf-nope") { id } }')["workflow"] is None
    failed = gql.post("/graphql", {"query": '{ workflows(status: "sideways") { id } }'}).json()
    assert failed["errors"][0]["extensions"]["code"] == "invalid_input"


def test_mutations_act_on_subjects_and_workflows(env: Env, gql: Transport) -> None:
    created = env.json("subject", "create", "--title", "graph task", "--status", "backlog")["subject"]["id"]
    moved = query(gql, 'mutation($id: ID!) { setSubjectStatus(id: $id, status: "ready") }', {"id": created})
    assert moved["setSubjectStatus"]["status"] == "ready"
    assert query(gql, "query($id: ID!) { subject(id: $id) }", {"id": created})["subject"]["status"] == "ready"
    assert created in [s["id"] for s in query(gql, '{ subjects(status: "ready") }')["subjects"]]
    wf = query(gql, 'mutation { runWorkflow(title: "by mutation") { id status } }')["runWorkflow"]["id"]
    wait_until(lambda: env.call("workflow/get", {"id": wf})["status"] == "completed", timeout=30,
               what="the mutation's workflow to complete")
    got = query(gql, "query($id: ID!) { workflow(id: $id) { status triggerSource phases { phase status } } }",
                {"id": wf})["workflow"]
    assert got == {"status": "completed", "triggerSource": "manual", "phases": [{"phase": "speak", "status": "completed"}]}
    no_branch = gql.post("/graphql", {"query": "query($id: ID!) { workflow(id: $id) { diff } }", "variables": {"id": wf}})
    assert no_branch.json()["errors"][0]["extensions"]["code"] == "conflict"  # no commit here: no worktree


def test_subjects_are_created_and_edited_as_the_web_ui_does(env: Env, gql: Transport) -> None:
    made = query(gql, 'mutation { createSubject(title: "from graphql", priority: "p1", labels: ["ui"],'
                      ' description: "typed") }')["createSubject"]
    shown = env.json("subject", "get", "--id", made["id"])["subject"]
    assert (shown["title"], shown["priority"], shown["labels"], shown["description"]) == (
        "from graphql", "p1", ["ui"], "typed")
    edited = query(gql, "mutation($id: ID!) { updateSubject(id: $id, fields: {priority: \"p0\"}) }", {"id": made["id"]})
    assert edited["updateSubject"]["priority"] == "p0" == env.json("subject", "get", "--id", made["id"])["subject"]["priority"]
    refused = gql.post("/graphql", {"query": "mutation($id: ID!) { updateSubject(id: $id, fields: {colour: \"red\"}) }",
                                    "variables": {"id": made["id"]}}).json()
    assert refused["errors"][0]["extensions"]["code"] == "invalid_input"


def _subscribe(ws: ClientConnection, text: str) -> None:
    ws.send(json.dumps({"type": "connection_init", "payload": {}}))
    assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"
    ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": text}}))


def test_subscription_receives_a_workflow_live(env: Env, gql: Transport) -> None:
    url = gql.url.replace("http", "ws") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], additional_headers=gql.headers, open_timeout=10) as ws:
        _subscribe(ws, 'subscription { events(level: "info") { kind cat workflowId phase seq src data } }')
        first = json.loads(ws.recv(timeout=15))
        assert first["type"] == "next" and first["payload"]["data"]["events"]["kind"] == "stream_ready"
        wf = env.json("workflow", "run", "--title", "subscribed")["workflow_id"]
        mine: list[dict[str, Any]] = []
        while not mine or mine[-1]["kind"] != "workflow_completed":
            msg = json.loads(ws.recv(timeout=30))
            assert msg["type"] == "next", msg
            event = msg["payload"]["data"]["events"]
            assert event["kind"] != "stream_gap", event
            if event["workflowId"] == wf:
                mine.append(event)
        ws.send(json.dumps({"id": "1", "type": "complete"}))
    kinds = [e["kind"] for e in mine]
    assert kinds[0] == "workflow_queued" and "phase_started" in kinds
    assert [e["data"]["line"] for e in mine if e["kind"] == "phase_output"] == ["graph-line-1", "graph-line-2"]


def test_subscription_filters_by_workflow(env: Env, gql: Transport) -> None:
    url = gql.url.replace("http", "ws") + "/graphql"
    with connect(url, subprotocols=["graphql-transport-ws"], additional_headers=gql.headers, open_timeout=10) as ws:
        _subscribe(ws, 'subscription { events(workflowId: "wf-other", cat: "phase") { kind workflowId } }')
        assert json.loads(ws.recv(timeout=15))["payload"]["data"]["events"]["kind"] == "stream_ready"
        wf = env.json("workflow", "run", "--title", "not for this subscriber")["workflow_id"]
        wait_until(lambda: env.call("workflow/get", {"id": wf})["status"] == "completed", timeout=30,
                   what="the workflow to complete")
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)  # everything it published was filtered out


def test_manual_gates_are_approved_and_rejected_and_the_log_answers(env: Env, gql: Transport) -> None:
    def gated() -> str:
        wf = str(env.call("workflow/run", {"title": "needs a decision", "workflow_ref": "gated"})["workflow_id"])
        wait_until(lambda: (env.call("workflow/get", {"id": wf}).get("waiting") or "").startswith("approval"),
                   timeout=30, what=f"{wf} to wait at its gate")
        return wf

    approved, rejected = gated(), gated()
    data = query(gql, "mutation($id: ID!) { approveWorkflow(id: $id, phase: \"gate\", note: \"fine\") { id } }",
                 {"id": approved})
    assert data["approveWorkflow"]["id"] == approved
    data = query(gql, "mutation($id: ID!) { rejectWorkflow(id: $id, note: \"not like this\") { id } }",
                 {"id": rejected})
    assert data["rejectWorkflow"]["id"] == rejected
    wait_until(lambda: env.call("workflow/get", {"id": approved})["status"] == "completed", timeout=30,
               what="the approved run to complete")
    wait_until(lambda: env.call("workflow/get", {"id": rejected})["status"] == "failed", timeout=30,
               what="the rejected run to fail")
    assert "not like this" in env.call("workflow/get", {"id": rejected})["failure_reason"]

    data = query(gql, "query($wf: String) { logs(workflowId: $wf, limit: 500) }", {"wf": approved})
    kinds = [e["kind"] for e in data["logs"]]
    assert "workflow_completed" in kinds, kinds
    rows = query(gql, "{ health { plugins { plugin details } } }")["health"]["plugins"]
    assert {r["plugin"]: r["details"]["plugin"] for r in rows} == {r["plugin"]: r["plugin"] for r in rows}


def test_the_server_listens_while_the_app_is_built_and_early_requests_wait(tmp_path: Path) -> None:
    """graphql-core is imported in a thread while the server already listens (the daemon's start
    does not wait ~150 ms for it): a request that comes first is answered once the app exists."""
    import threading

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from animus.plugins.transports.graphql.__main__ import Warming
    from animus.plugins.transports.link import DaemonLink
    from animus.plugins.transports.server import ServerThread

    release = threading.Event()

    def build() -> Starlette:
        release.wait(30)
        return Starlette(routes=[Route("/graphql", lambda request: PlainTextResponse("built"))])

    link = DaemonLink(f"ipc://{tmp_path}/control", f"ipc://{tmp_path}/bus.out")
    server = ServerThread(Warming(link, build), "127.0.0.1", 0)
    server.start()  # the lifespan completed with the app still unbuilt
    try:
        answers: list[httpx.Response] = []
        asking = threading.Thread(target=lambda: answers.append(httpx.get(f"{server.url}/graphql", timeout=30)))
        asking.start()
        wait_until(lambda: link.control is not None, timeout=10, what="the link started by the lifespan")
        wait_until(lambda: server.server.server_state.tasks, timeout=10,  # a task per request being handled
                   what="the request received by the server")
        assert asking.is_alive() and not answers  # received, waiting for the app
        release.set()
        asking.join(30)
        assert answers[0].status_code == 200 and answers[0].text == "built"
    finally:
        release.set()
        server.stop()
