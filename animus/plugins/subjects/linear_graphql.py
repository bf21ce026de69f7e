"""Linear's GraphQL documents and the pure mapping between Linear issues and Subjects.

Kept apart from the HTTP client so the mapping (states, priorities, the
"blocked" convention) is tested without a server, and so the documents the
client sends are in one place to check against Linear's public schema.

Linear has no "blocked" state type. A team may have a state *named* like
"Blocked" (of any type); if it has none, a blocked issue stays in a
``started`` state and carries the label ``blocked``. Reading maps both back
to the normalized ``blocked``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from animus.errors import InvalidInput

from .model import Subject, format_timestamp, qualify

__all__ = [
    "KIND",
    "BLOCKED_LABEL",
    "ISSUE_FIELDS",
    "Q_ISSUES",
    "Q_ISSUE",
    "Q_TEAM",
    "Q_LABELS",
    "Q_USERS",
    "M_ISSUE_CREATE",
    "M_ISSUE_UPDATE",
    "M_LABEL_CREATE",
    "M_COMMENT_CREATE",
    "to_subject",
    "subject_status",
    "subject_priority",
    "linear_priority",
    "choose_state",
    "state_types_for",
]

KIND = "linear.issue"
BLOCKED_LABEL = "blocked"

ISSUE_FIELDS = """
fragment AnimusIssue on Issue {
  id identifier title description priority url createdAt updatedAt
  state { id name type }
  labels { nodes { id name } }
  assignee { id name email }
  parent { identifier }
  children { nodes { identifier } }
  team { id key }
}"""
Q_ISSUES = (
    """query AnimusIssues($first: Int!, $after: String, $filter: IssueFilter) {
  issues(first: $first, after: $after, filter: $filter) {
    nodes { ...AnimusIssue }
    pageInfo { hasNextPage endCursor }
  }
}"""
    + ISSUE_FIELDS
)
Q_ISSUE = (
    """query AnimusIssue($id: String!) {
  issue(id: $id) { ...AnimusIssue }
}"""
    + ISSUE_FIELDS
)
Q_TEAM = """query AnimusTeam($id: String!) {
  team(id: $id) { id key states { nodes { id name type position } } }
}"""
Q_LABELS = """query AnimusLabels($filter: IssueLabelFilter) {
  issueLabels(first: 250, filter: $filter) { nodes { id name team { id } } }
}"""
Q_USERS = """query AnimusUsers($filter: UserFilter) {
  users(first: 2, filter: $filter) { nodes { id name email } }
}"""
M_ISSUE_CREATE = (
    """mutation AnimusIssueCreate($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { ...AnimusIssue } }
}"""
    + ISSUE_FIELDS
)
M_ISSUE_UPDATE = (
    """mutation AnimusIssueUpdate($id: String!, $input: IssueUpdateInput!) {
  issueUpdate(id: $id, input: $input) { success issue { ...AnimusIssue } }
}"""
    + ISSUE_FIELDS
)
M_LABEL_CREATE = """mutation AnimusLabelCreate($input: IssueLabelCreateInput!) {
  issueLabelCreate(input: $input) { success issueLabel { id name } }
}"""
M_COMMENT_CREATE = """mutation AnimusComment($input: CommentCreateInput!) {
  commentCreate(input: $input) { success }
}"""

# Linear: 0 none, 1 urgent, 2 high, 3 medium ("normal"), 4 low.
_TO_SUBJECT_PRIORITY = {0: "p3", 1: "p0", 2: "p1", 3: "p2", 4: "p3"}
_TO_LINEAR_PRIORITY = {"p0": 1, "p1": 2, "p2": 3, "p3": 4}
_TYPE_TO_STATUS = {
    "triage": "backlog",
    "backlog": "backlog",
    "unstarted": "ready",
    "started": "in-progress",
    "completed": "done",
    "canceled": "cancelled",
}
_STATUS_TO_TYPE = {
    "backlog": "backlog",
    "ready": "unstarted",
    "in-progress": "started",
    "done": "completed",
    "cancelled": "canceled",
}
_BLOCKED_NAME = re.compile(r"\bblocked\b", re.IGNORECASE)


def subject_priority(value: Any) -> str:
    return _TO_SUBJECT_PRIORITY.get(int(value or 0), "p3")


def linear_priority(priority: str) -> int:
    return _TO_LINEAR_PRIORITY[priority]


def _is_blocked_state(state: Mapping[str, Any]) -> bool:
    return bool(_BLOCKED_NAME.search(str(state.get("name") or "")))


def subject_status(state: Mapping[str, Any], labels: Sequence[str]) -> str:
    if _is_blocked_state(state):
        return "blocked"
    status = _TYPE_TO_STATUS.get(str(state.get("type")), "backlog")
    if status == "in-progress" and any(lbl.lower() == BLOCKED_LABEL for lbl in labels):
        return "blocked"
    return status


def state_types_for(statuses: set[str]) -> list[str] | None:
    """State types worth asking Linear for; None when any type could match (blocked)."""
    if "blocked" in statuses:
        return None
    types = {_STATUS_TO_TYPE[s] for s in statuses}
    if "backlog" in statuses:
        types.add("triage")
    return sorted(types)


def _timestamp(value: Any) -> str | None:
    if not value:
        return None
    return format_timestamp(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def to_subject(node: Mapping[str, Any]) -> Subject:
    """A Linear ``Issue`` node (the ``AnimusIssue`` fragment) as a Subject."""
    labels = [str(lbl["name"]) for lbl in (node.get("labels") or {}).get("nodes", [])]
    state = node.get("state") or {}
    assignee = node.get("assignee") or {}
    parent = node.get("parent") or {}
    children = (node.get("children") or {}).get("nodes", [])
    team = node.get("team") or {}
    return Subject(
        id=qualify(KIND, str(node["identifier"])),
        kind=KIND,
        title=str(node.get("title") or node["identifier"]),
        description=str(node.get("description") or ""),
        status=subject_status(state, labels),
        priority=subject_priority(node.get("priority")),
        labels=tuple(labels),
        assignee=assignee.get("email") or assignee.get("name"),
        parent=qualify(KIND, parent["identifier"]) if parent.get("identifier") else None,
        children=tuple(qualify(KIND, c["identifier"]) for c in children),
        url=node.get("url"),
        created_at=_timestamp(node.get("createdAt")),
        updated_at=_timestamp(node.get("updatedAt")),
        custom={
            "linear_id": node.get("id"),
            "native_status": state.get("name"),
            "state_type": state.get("type"),
            "team_key": team.get("key"),
        },
    )


def choose_state(
    states: Sequence[Mapping[str, Any]], current: Mapping[str, Any], status: str, team: str
) -> tuple[Mapping[str, Any], bool]:
    """The workflow state for a normalized status, and whether to add the blocked label.

    An issue already in a state of the right type stays there (moving "In
    Review" to "In Progress" would lose information); otherwise the first
    state of that type in the team's order is used.
    """
    ordered = sorted(states, key=lambda s: float(s.get("position") or 0))
    if status == "blocked":
        named = [s for s in ordered if _is_blocked_state(s)]
        if named:
            return named[0], False
        if current.get("type") == "started" and not _is_blocked_state(current):
            return current, True
        started = [s for s in ordered if s.get("type") == "started" and not _is_blocked_state(s)]
        if not started:
            raise InvalidInput(
                f"Linear team {team} has no 'started' workflow state to mark blocked"
            )
        return started[0], True
    wanted = _STATUS_TO_TYPE[status]
    if current.get("type") == wanted and not _is_blocked_state(current):
        return current, False
    candidates = [s for s in ordered if s.get("type") == wanted and not _is_blocked_state(s)]
    if not candidates:
        raise InvalidInput(
            f"Linear team {team} has no workflow state of type {wanted!r} for status {status!r}",
            fix="add one in Linear → Team settings → Workflow",
        )
    return candidates[0], False
