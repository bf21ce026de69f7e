"""The linear.issue backend against a real local HTTP server speaking Linear's GraphQL shapes."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from animus.errors import InvalidInput, NotFound, Unavailable
from animus.plugins.subjects import LinearClient
from animus.plugins.subjects import linear_graphql as gql

FIXTURES = Path(__file__).parent / "fixtures" / "linear"


def _load_fake() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fake_linear", FIXTURES / "fake_linear.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_linear", module)
    spec.loader.exec_module(module)
    return module


fake_linear = _load_fake()
WORKSPACE = json.loads((FIXTURES / "workspace.json").read_text())
ENG, OPS = (team["id"] for team in WORKSPACE["teams"])


class RecordingSleep:
    """Records the waits the client asks for (they are short in tests) without sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def server() -> Iterator[object]:
    with fake_linear.FakeLinear() as fake:
        yield fake


def client(server: object, **options: object) -> LinearClient:
    options.setdefault("team_id", ENG)
    options.setdefault("sleep", RecordingSleep())
    return LinearClient(fake_linear.API_KEY, base_url=server.url, **options)  # type: ignore[attr-defined, arg-type]


def bodies(server: object) -> list[dict]:
    return [r["body"] for r in server.requests]  # type: ignore[attr-defined]


# -- configuration and transport --------------------------------------------------------


def test_a_missing_api_key_names_the_environment_variable() -> None:
    with pytest.raises(InvalidInput) as err:
        LinearClient(None)
    assert "LINEAR_API_KEY" in err.value.message and "LINEAR_API_KEY" in (err.value.fix or "")
    with pytest.raises(InvalidInput, match="LINEAR_API_KEY is not set"):
        LinearClient.from_env({})


def test_from_env_reads_key_team_and_url(server: object) -> None:
    env = {
        "LINEAR_API_KEY": fake_linear.API_KEY,
        "LINEAR_TEAM_ID": OPS,
        "LINEAR_API_URL": server.url,
    }  # type: ignore[attr-defined]
    linear = LinearClient.from_env(env)
    assert [s.id for s in linear.list()] == ["linear.issue:OPS-1"]


def test_requests_carry_the_api_key_and_graphql_body(server: object) -> None:
    client(server).get("ENG-1")
    request = server.requests[0]  # type: ignore[attr-defined]
    assert request["path"] == "/graphql"
    assert request["headers"]["Authorization"] == fake_linear.API_KEY
    assert request["headers"]["Content-Type"] == "application/json"
    assert set(request["body"]) == {"query", "variables"}
    assert request["body"]["variables"] == {"id": "ENG-1"}


def test_a_rejected_key_is_invalid_input(server: object) -> None:
    linear = LinearClient("lin_api_wrong", base_url=server.url)  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput) as err:
        linear.get("ENG-1")
    assert err.value.message.startswith("Linear rejected the API key")
    assert "LINEAR_API_KEY" in (err.value.fix or "")


def test_an_unreachable_api_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request: nothing listens
    with pytest.raises(Unavailable, match="Linear API unreachable at http://127.0.0.1"):
        LinearClient("k", base_url=f"http://127.0.0.1:{port}/graphql", timeout=2).get("ENG-1")


def test_server_errors_are_unavailable(server: object) -> None:
    server.reply_next(500, fake_linear.load("responses/error_internal.json"))  # type: ignore[attr-defined]
    with pytest.raises(Unavailable, match="Linear API error: Internal server error"):
        client(server).get("ENG-1")
    server.reply_next(502, {"message": "bad gateway"})  # type: ignore[attr-defined]
    with pytest.raises(Unavailable, match="HTTP 502 and no GraphQL data"):
        client(server).get("ENG-1")


# -- rate limits --------------------------------------------------------------------------


def test_429_waits_retry_after_then_succeeds(server: object) -> None:
    limited = fake_linear.load("responses/error_ratelimited.json")
    server.reply_next(429, limited, {"Retry-After": "2"})  # type: ignore[attr-defined]
    server.reply_next(429, limited, {"Retry-After": "120"})  # type: ignore[attr-defined]
    sleep = RecordingSleep()
    subject = client(server, sleep=sleep, max_retry_wait=30).get("ENG-1")
    assert subject.title == "Login page returns 500"
    assert sleep.calls == [2.0, 30.0]  # the second wait is capped
    assert len(server.requests) == 3  # type: ignore[attr-defined]


def test_a_ratelimited_graphql_error_is_retried_too(server: object) -> None:
    server.reply_next(
        400,
        fake_linear.load("responses/error_ratelimited.json"),  # type: ignore[attr-defined]
        {"X-RateLimit-Requests-Reset": str((1_767_225_600 + 7) * 1000)},
    )
    sleep = RecordingSleep()
    linear = client(server, sleep=sleep, clock=lambda: 1_767_225_600.0)
    assert linear.get("ENG-1").id == "linear.issue:ENG-1"
    assert sleep.calls == [7.0]  # until the reset time, which Linear sends in epoch ms


def test_retries_run_out_with_the_reset_time(server: object) -> None:
    limited = fake_linear.load("responses/error_ratelimited.json")
    for _ in range(3):
        server.reply_next(429, limited, {"Retry-After": "5"})  # type: ignore[attr-defined]
    sleep = RecordingSleep()
    linear = client(server, sleep=sleep, max_retries=2, clock=lambda: 1_767_225_600.0)
    with pytest.raises(Unavailable) as err:
        linear.get("ENG-1")
    assert err.value.message == (
        "Linear rate limit still exceeded after 2 retries; it resets at 2026-01-01T00:00:05.000000Z"
    )
    assert err.value.details == {"reset_at": "2026-01-01T00:00:05.000000Z", "retry_after": 5.0}
    assert sleep.calls == [5.0, 5.0]


def test_real_waits_are_short_in_tests(server: object) -> None:
    """With the real sleep, a small cap keeps the retry fast but real."""
    server.reply_next(
        429, fake_linear.load("responses/error_ratelimited.json"), {"Retry-After": "1"}
    )  # type: ignore[attr-defined]
    linear = LinearClient(fake_linear.API_KEY, base_url=server.url, max_retry_wait=0.01)  # type: ignore[attr-defined]
    assert linear.get("ENG-1").id == "linear.issue:ENG-1"


# -- reads ----------------------------------------------------------------------------------


def test_list_follows_page_info_across_three_pages(server: object) -> None:
    subjects = client(server, page_size=3).list()
    assert [s.native_id for s in subjects] == [f"ENG-{n}" for n in range(1, 8)]
    sent = bodies(server)
    assert len(sent) == 3
    assert [b["variables"]["after"] is None for b in sent] == [True, False, False]
    assert sent[0]["variables"]["first"] == 3
    assert sent[0]["variables"]["filter"] == {"and": [{"team": {"id": {"eq": ENG}}}]}


def test_list_stops_paginating_at_the_limit(server: object) -> None:
    assert len(client(server, page_size=3).list(limit=4)) == 4
    assert len(server.requests) == 2  # type: ignore[attr-defined]


def test_list_filters_by_state_type_and_label(server: object) -> None:
    linear = client(server, page_size=2)
    assert [s.native_id for s in linear.list(status="ready")] == ["ENG-1", "ENG-3", "ENG-5"]
    assert bodies(server)[0]["variables"]["filter"]["and"][1] == {
        "state": {"type": {"in": ["unstarted"]}}
    }
    assert [s.native_id for s in linear.list(status="ready", labels=["Bug"])] == ["ENG-1", "ENG-3"]
    assert [s.native_id for s in linear.list(status="blocked")] == ["ENG-6"]
    assert [s.native_id for s in linear.list(status="in_progress")] == ["ENG-4"]


def test_get_maps_an_issue_to_a_subject(server: object) -> None:
    subject = client(server).get("linear.issue:ENG-1")
    assert subject.to_dict() | {"custom": {}} == {
        "id": "linear.issue:ENG-1",
        "kind": "linear.issue",
        "title": "Login page returns 500",
        "description": "Stack trace in Sentry.",
        "status": "ready",
        "priority": "p1",
        "labels": ["Bug"],
        "assignee": "ada@example.com",
        "parent": None,
        "children": [],
        "url": "https://linear.app/acme/issue/ENG-1/login-page-returns-500",
        "created_at": "2025-03-01T09:00:00.000000Z",
        "updated_at": "2025-03-01T09:00:00.000000Z",
        "blocked_reason": None,
        "blocked_at": None,
        "custom": {},
    }
    assert subject.custom["native_status"] == "Todo"
    assert client(server).get("ENG-2").children == ("linear.issue:ENG-5",)
    assert client(server).get("ENG-5").parent == "linear.issue:ENG-2"


def test_a_missing_issue_is_not_found(server: object) -> None:
    with pytest.raises(NotFound, match="Could not find referenced Issue"):
        client(server).get("ENG-999")
    with pytest.raises(InvalidInput, match="is of kind 'task'"):
        client(server).get("task:TASK-001")


def test_next_is_the_highest_priority_ready_issue(server: object) -> None:
    assert client(server).next().native_id == "ENG-3"  # urgent beats the older high-priority ENG-1


def test_priorities_map_both_ways() -> None:
    assert [gql.subject_priority(p) for p in (0, 1, 2, 3, 4)] == ["p3", "p0", "p1", "p2", "p3"]
    assert [gql.linear_priority(p) for p in ("p0", "p1", "p2", "p3")] == [1, 2, 3, 4]


def test_a_recorded_page_maps_offline() -> None:
    page = json.loads((FIXTURES / "responses" / "issues_page.json").read_text())
    subject = gql.to_subject(page["data"]["issues"]["nodes"][0])
    assert (subject.id, subject.status, subject.priority) == (
        "linear.issue:ENG-123",
        "blocked",
        "p0",
    )
    assert (subject.parent, subject.children) == ("linear.issue:ENG-100", ("linear.issue:ENG-124",))


# -- writes ---------------------------------------------------------------------------------


def test_create_picks_the_state_priority_labels_and_assignee(server: object) -> None:
    linear = client(server)
    subject = linear.create(
        "Audit log",
        "Who changed what.",
        status="ready",
        priority="p0",
        labels=["Bug", "Feature"],
        assignee="grace@example.com",
        parent="ENG-2",
    )
    assert subject.id == "linear.issue:ENG-8"
    assert (subject.status, subject.custom["native_status"], subject.priority) == (
        "ready",
        "Todo",
        "p0",
    )
    assert subject.labels == ("Bug", "Feature")
    assert (subject.assignee, subject.parent) == ("grace@example.com", "linear.issue:ENG-2")
    sent = bodies(server)[-1]["variables"]["input"]
    assert (
        sent["priority"] == 1
        and sent["teamId"] == ENG
        and sent["description"] == "Who changed what."
    )
    assert linear.get("ENG-8") == subject


def test_create_blocked_posts_the_default_reason(server: object) -> None:
    subject = client(server).create("Blocked from the start", status="blocked")
    assert (subject.status, subject.blocked_reason) == ("blocked", "Blocked by status update")
    assert server.comments[-1]["body"] == "Blocked by Animus: Blocked by status update"  # type: ignore[attr-defined]


def test_create_refuses_unknown_labels_custom_fields_and_a_missing_team(server: object) -> None:
    with pytest.raises(InvalidInput, match="Linear has no label 'nope'"):
        client(server).create("x", labels=["nope"])
    with pytest.raises(InvalidInput, match="no custom fields"):
        client(server).create("x", custom={"a": 1})
    with pytest.raises(InvalidInput, match="needs a team"):
        client(server, team_id=None).create("x")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("backlog", "Backlog"),
        ("ready", "Todo"),
        ("in-progress", "In Progress"),
        ("done", "Done"),
        ("cancelled", "Canceled"),
    ],
)
def test_set_status_moves_to_the_state_of_the_mapped_type(
    server: object, status: str, state: str
) -> None:
    subject = client(server).set_status("ENG-2", status)
    assert (subject.status, subject.custom["native_status"]) == (status, state)


def test_a_state_of_the_right_type_is_kept(server: object) -> None:
    linear = client(server)
    linear.update("ENG-4", status="in-progress")
    server.data["issues"][3]["stateId"] = next(  # type: ignore[attr-defined]
        s["id"]
        for s in WORKSPACE["workflowStates"]
        if s["name"] == "In Review" and s["teamId"] == ENG
    )
    assert linear.set_status("ENG-4", "in-progress").custom["native_status"] == "In Review"


def test_blocked_uses_a_blocked_state_when_the_team_has_one(server: object) -> None:
    subject = client(server).set_status("ENG-1", "blocked", "waiting on the identity provider")
    assert (subject.status, subject.custom["native_status"]) == ("blocked", "Blocked")
    assert "blocked" not in subject.labels
    assert subject.blocked_reason == "waiting on the identity provider"
    assert server.comments == [
        {  # type: ignore[attr-defined]
            "issueId": WORKSPACE["issues"][0]["id"],
            "body": "Blocked by Animus: waiting on the identity provider",
        }
    ]
    assert client(server).set_status("ENG-1", "ready").custom["native_status"] == "Todo"


def test_blocked_without_a_blocked_state_keeps_started_and_labels_it(server: object) -> None:
    linear = client(server, team_id=OPS)
    blocked = linear.set_status("OPS-1", "blocked")
    assert (blocked.status, blocked.custom["native_status"]) == ("blocked", "In Progress")
    assert blocked.labels == ("infra", "blocked")
    assert blocked.blocked_reason == "Blocked by status update"
    assert linear.get("OPS-1").status == "blocked"
    assert any(
        lbl["name"] == "blocked" and lbl["teamId"] == OPS for lbl in server.data["issueLabels"]
    )  # type: ignore[attr-defined]
    ready = linear.set_status("OPS-1", "ready")
    assert (ready.status, ready.labels) == ("ready", ("infra",))


def test_update_changes_fields(server: object) -> None:
    linear = client(server)
    updated = linear.update(
        "ENG-2",
        title="Dark mode everywhere",
        priority="p1",
        assignee="ada@example.com",
        labels=["Feature", "Bug"],
    )
    assert (updated.title, updated.priority, updated.assignee) == (
        "Dark mode everywhere",
        "p1",
        "ada@example.com",
    )
    assert updated.labels == ("Feature", "Bug")
    assert linear.update("ENG-2", assignee=None).assignee is None
    with pytest.raises(InvalidInput, match="cannot update field"):
        linear.update("ENG-2", colour="red")
    with pytest.raises(InvalidInput, match="not blocked"):
        linear.update("ENG-2", blocked_reason="why")
    with pytest.raises(NotFound, match="no Linear user"):
        linear.update("ENG-2", assignee="nobody@example.com")
