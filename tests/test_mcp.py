"""animus mcp serve against a real daemon, through the MCP SDK's own client.

One daemon (the default subject backend, a one-phase command workflow) and
one stdio server serve the module. The server is started the way Animus
starts it for an agent: ``ANIMUS_TASK_ID`` and ``ANIMUS_WORKFLOW_ID`` name a
task and a run made before it started, so "my task" can be checked beside
explicit ids. Every change made over MCP is read back with the CLI, the way
an operator would look. Also: bad arguments are tool errors and the server
keeps serving; the daemon down is one clear error; ``--http`` needs the
transports' token and a busy port is one clear error.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ANIMUS, Env
from mcp import ClientSession, StdioServerParameters, stdio_client

from animus.testing import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "transports"))
from daemon_env import daemon_env  # noqa: E402

WORKFLOWS = """
phases:
  hello:
    mode: command
    idempotency: idempotent
    command: {program: sh, args: [-c, "echo hello-from-mcp-run"]}
workflows:
  - id: hello
    phases: [hello]
default_workflow_ref: hello
"""
TOOLS = {"subject_list", "subject_get", "subject_create", "subject_update", "subject_status", "subject_next",
         "subject_comment", "workflow_list", "workflow_get", "workflow_run", "workflow_events", "daemon_status"}
DOWN = "error: daemon not running: start it with animus daemon start"


class Mcp:
    """The SDK's stdio client in a thread of its own, so that tests call it synchronously."""

    def __init__(self, env: Env, extra: dict[str, str] | None = None) -> None:
        params = StdioServerParameters(command=ANIMUS[0], args=[*ANIMUS[1:], "mcp", "serve"],
                                       env={**env.env, **(extra or {})}, cwd=str(env.project))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ready: concurrent.futures.Future[tuple[ClientSession, Any]] = concurrent.futures.Future()
        self.stop = asyncio.Event()
        self.main = asyncio.run_coroutine_threadsafe(self._main(params), self.loop)
        self.session, self.init = self.ready.result(timeout=60)

    async def _main(self, params: StdioServerParameters) -> None:
        try:
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                self.ready.set_result((session, await session.initialize()))
                await self.stop.wait()
        except BaseException as exc:
            if not self.ready.done():
                self.ready.set_exception(exc)
            raise

    def run(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout=60)

    def call(self, tool: str, args: dict[str, Any] | None = None) -> Any:
        return self.run(lambda: self.session.call_tool(tool, args or {}))

    def ok(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        result = self.call(tool, args)
        assert not result.is_error, result.content[0].text
        return result.structured_content  # type: ignore[no-any-return]

    def error(self, tool: str, args: dict[str, Any] | None = None) -> str:
        result = self.call(tool, args)
        assert result.is_error, f"{tool}({args}) succeeded: {result.content[0].text}"
        text: str = result.content[0].text
        assert "\n" not in text and "Traceback" not in text
        return text

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.main.result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with daemon_env(tmp_path_factory.mktemp("mcp"), ["default"], WORKFLOWS) as e:
        yield e


@pytest.fixture(scope="module")
def mine(board: Env) -> dict[str, str]:
    """A task and a run on it, made before the server starts: the server's 'my task' and 'my run'."""
    task = board.call("subject/call", {"kind": "task", "verb": "create",
                                       "params": {"title": "the agent's task", "status": "ready"}})["id"]
    wf = board.call("workflow/run", {"task_id": task})["workflow_id"]
    wait_until(lambda: board.call("workflow/get", {"id": wf})["status"] == "completed", timeout=30,
               what=f"{wf} to complete")
    return {"task": task, "workflow": wf}


@pytest.fixture(scope="module")
def mcp(board: Env, mine: dict[str, str]) -> Iterator[Mcp]:
    client = Mcp(board, {"ANIMUS_TASK_ID": mine["task"], "ANIMUS_WORKFLOW_ID": mine["workflow"]})
    yield client
    client.close()


def cli_subject(env: Env, subject_id: str) -> dict[str, Any]:
    """What ``animus subject get --id <id> --json`` shows."""
    return env.json("subject", "get", "--id", subject_id)["subject"]  # type: ignore[no-any-return]


def board_subject(env: Env, subject_id: str) -> dict[str, Any]:
    """The same, without a CLI process: the control call ``animus subject get`` makes."""
    return env.call("subject/call", {"kind": "task", "verb": "get", "params": {"id": subject_id}})  # type: ignore[no-any-return]


def test_initialize_and_tools_list(mcp: Mcp) -> None:
    assert mcp.init.server_info.name == "animus"
    tools = mcp.run(mcp.session.list_tools).tools
    assert {t.name for t in tools} == TOOLS
    for tool in tools:
        assert tool.description and tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
    create = next(t for t in tools if t.name == "subject_create")
    assert create.input_schema["required"] == ["title"]


def test_subjects_over_mcp_are_what_the_cli_shows(mcp: Mcp, board: Env) -> None:
    made = mcp.ok("subject_create", {"title": "Written over MCP", "priority": "p1", "labels": ["mcp"],
                                     "status": "ready"})["subject"]
    assert board_subject(board, made["id"])["title"] == "Written over MCP"
    mcp.ok("subject_update", {"id": made["id"], "fields": {"title": "Renamed over MCP"}})
    mcp.ok("subject_status", {"id": made["id"], "status": "blocked", "reason": "waiting on review"})
    seen = cli_subject(board, made["id"])
    assert (seen["title"], seen["status"], seen["blocked_reason"]) == ("Renamed over MCP", "blocked", "waiting on review")
    listed = mcp.ok("subject_list", {"labels": ["mcp"]})["subjects"]
    assert [s["id"] for s in listed] == [made["id"]]
    assert mcp.ok("subject_get", {"id": made["id"]})["subject"]["status"] == "blocked"
    mcp.ok("subject_status", {"id": made["id"], "status": "ready"})
    ready = board.call("subject/call", {"kind": "task", "verb": "next", "params": {}})
    assert mcp.ok("subject_next")["subject"]["id"] == ready["id"]


def test_comments_keep_their_order_and_show_in_the_cli(mcp: Mcp, board: Env, mine: dict[str, str]) -> None:
    first = mcp.ok("subject_comment", {"body": "started on it"})
    second = mcp.ok("subject_comment", {"id": mine["task"], "body": "tests pass", "author": "reviewer"})
    assert first["subject_id"] == mine["task"]
    thread = second["comments"][-2:]
    assert [(c["author"], c["body"]) for c in thread] == [(f"workflow {mine['workflow']}", "started on it"),
                                                           ("reviewer", "tests pass")]
    custom = board_subject(board, mine["task"])["custom"]
    assert custom[second["comment"]["id"]] == {"author": "reviewer", "body": "tests pass"}
    assert mcp.ok("subject_get")["comments"][-2:] == thread


def test_comments_made_at_once_are_all_kept(mcp: Mcp, board: Env) -> None:
    task = mcp.ok("subject_create", {"title": "busy thread"})["subject"]["id"]

    async def at_once() -> list[Any]:
        return await asyncio.gather(*(mcp.session.call_tool("subject_comment", {"id": task, "body": f"note {i}"})
                                      for i in range(6)))

    assert not any(r.is_error for r in mcp.run(at_once))
    kept = mcp.ok("subject_get", {"id": task})["comments"]
    assert sorted(c["body"] for c in kept) == [f"note {i}" for i in range(6)]


def test_my_task_and_my_run_need_no_id(mcp: Mcp, board: Env, mine: dict[str, str]) -> None:
    assert mcp.ok("subject_get")["subject"]["id"] == mine["task"]
    follow_up = mcp.ok("subject_create", {"title": "Follow-up from the agent", "parent": mine["task"]})["subject"]
    assert board_subject(board, follow_up["id"])["parent"] == mine["task"]
    mcp.ok("subject_status", {"status": "done"})
    assert cli_subject(board, mine["task"])["status"] == "done"
    wf = mcp.ok("workflow_get")["workflow"]
    assert (wf["id"], wf["subject_id"]) == (mine["workflow"], mine["task"])
    events = mcp.ok("workflow_events")["events"]
    assert events and all(e["workflow_id"] == mine["workflow"] for e in events)
    assert any("hello-from-mcp-run" in str(e) for e in events)
    again = mcp.ok("workflow_run")
    assert (again["subject_id"], again["trigger_source"]) == (mine["task"], "mcp") and again["id"] != mine["workflow"]


def test_workflows_run_list_get_with_phases_and_usage(mcp: Mcp, board: Env) -> None:
    task = mcp.ok("subject_create", {"title": "run me over MCP"})["subject"]["id"]
    started = mcp.ok("workflow_run", {"task_id": task, "workflow_ref": "hello"})
    wf_id = started["workflow_id"]
    assert (started["subject_id"], started["trigger_source"]) == (task, "mcp")
    done = wait_until(lambda: (w := mcp.ok("workflow_get", {"id": wf_id})["workflow"])["status"] == "completed" and w,
                      timeout=30, what=f"{wf_id} to complete")
    assert [(p["phase"], p["status"], p["attempts"]) for p in done["phases"]] == [("hello", "completed", 1)]
    assert "usage" in done and "usage" in done["phases"][0]
    shown = board.call("workflow/get", {"id": wf_id})
    assert (done["phases"], done["usage"], done["task_usage"]) == (shown["phases"], shown["usage"], shown["task_usage"])
    assert wf_id in [w["id"] for w in mcp.ok("workflow_list", {"task_id": task})["workflows"]]
    cats = {e.get("cat") for e in mcp.ok("workflow_events", {"id": wf_id, "limit": 200})["events"]}
    assert cats  # the run's own events, read back through the daemon
    assert mcp.ok("daemon_status")["project_root"] == str(board.project.resolve())


def test_bad_arguments_are_tool_errors_and_the_server_keeps_serving(mcp: Mcp) -> None:
    assert mcp.error("subject_list", {"limit": "ten"}) == (
        "error: subject_list: argument 'limit' must be an integer, got str 'ten'")
    assert mcp.error("subject_create", {}).startswith("error: subject_create: missing required argument 'title'")
    assert mcp.error("subject_get", {"idd": "x"}).startswith("error: subject_get: unknown argument(s) idd")
    assert mcp.error("workflow_list", {"status": "sleeping"}).startswith(
        "error: workflow_list: argument 'status' is 'sleeping': expected one of pending, running")
    assert mcp.error("subject_status", {"id": "TASK-001", "status": "bogus"}) == (
        "error: invalid status 'bogus': expected one of backlog, ready, in-progress, blocked, done, cancelled")
    assert mcp.error("no_such_tool").startswith("error: unknown tool 'no_such_tool' (fix: one of: daemon_status")
    structured = mcp.call("subject_get", {"id": "TASK-999"}).structured_content["error"]
    assert structured["code"] == "not_found" and structured["exit_code"] == 3
    assert mcp.ok("subject_list", {"limit": 1})["subjects"]


def test_errors_read_as_the_cli_prints_them(mcp: Mcp, board: Env) -> None:
    cli = board.run("subject", "get", "--id", "TASK-999")
    assert cli.returncode == 3
    assert mcp.error("subject_get", {"id": "TASK-999"}) == cli.stderr.strip()
    cli = board.run("workflow", "get", "wf-nope")
    assert mcp.error("workflow_events", {"id": "wf-nope"}) == cli.stderr.strip()


def test_daemon_down_is_one_clear_error(env: Env) -> None:
    client = Mcp(env)  # no daemon was ever started in this ANIMUS_HOME
    try:
        assert {t.name for t in client.run(client.session.list_tools).tools} == TOOLS
        for tool, args in [("subject_list", {}), ("subject_status", {"id": "TASK-1", "status": "done"}),
                           ("workflow_get", {"id": "wf-1"}), ("daemon_status", {})]:
            assert client.error(tool, args) == DOWN
            assert client.call(tool, args).structured_content["error"]["code"] == "unavailable"
    finally:
        client.close()


def test_http_needs_the_token_and_a_busy_port_is_one_error(board: Env, mcp: Mcp) -> None:
    proc = subprocess.Popen([*ANIMUS, "mcp", "serve", "--http", "--port", "0"], cwd=board.project, env=board.env,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the first line that names the URL (the pytest timeout is the deadline)
            url = re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line)
            if url:
                break
        assert url, "animus mcp serve --http exited without naming its URL"
        token_file = Path(re.search(r"the token in (\S+)>", line).group(1))  # type: ignore[union-attr]
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        headers = {"Accept": "application/json, text/event-stream"}
        refused = httpx.post(url.group(1), json=init, headers=headers, timeout=10)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        token = token_file.read_text().strip()
        answer = httpx.post(url.group(1), json=init, timeout=10,
                            headers={**headers, "Authorization": f"Bearer {token}"})
        assert answer.status_code == 200 and '"name":"animus"' in answer.text.replace(" ", "")
        port = url.group(1).rsplit(":", 1)[1].split("/")[0]
        busy = board.run("mcp", "serve", "--http", "--port", port)
        assert busy.returncode == 2
        assert busy.stderr.strip().startswith(f"error: cannot listen on 127.0.0.1:{port}: Address already in use")
        assert mcp.ok("subject_list", {"limit": 1})  # the stdio server beside it is unaffected
    finally:
        proc.terminate()
        proc.wait(20)
        proc.stderr.close()  # type: ignore[union-attr]
