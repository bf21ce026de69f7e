"""Linear issues as subjects: the ``linear`` backend's client (kind ``linear.issue``).

It offers the same methods as ``SubjectStore`` so the plugin layer treats
every backend alike; Linear's GraphQL documents and the issue ↔ subject
mapping are in ``linear_graphql``, the HTTP side (rate-limit retries, error
mapping) in ``linear_http``. A status becomes a workflow state of the issue's
team (``linear_graphql.choose_state``); Linear has no blocked reason, so the
reason is posted as a comment people see in Linear.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from animus.errors import InvalidInput, NotFound

from . import linear_graphql as gql
from .edits import check_fields, clean_labels
from .linear_http import API_KEY_ENV, DEFAULT_URL, LinearTransport
from .model import (
    DEFAULT_BLOCKED_REASON,
    Subject,
    apply_status,
    parse_priority,
    parse_status,
    split_subject_id,
    utc_now,
)

__all__ = ["LinearClient", "DEFAULT_URL", "API_KEY_ENV"]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


class LinearClient:
    """Linear issues through the subject-store surface (list/get/create/update/set_status/next)."""

    kind = gql.KIND

    def __init__(
        self,
        api_key: str | None,
        base_url: str = DEFAULT_URL,
        team_id: str | None = None,
        timeout: float = 10,
        *,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        page_size: int = 50,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key or not api_key.strip():
            raise InvalidInput(
                f"no Linear API key: {API_KEY_ENV} is not set",
                fix=f"export {API_KEY_ENV}=<a personal API key from Linear → Settings → API>",
            )
        _check_url(base_url)
        if not 1 <= page_size <= 250:  # Linear's limit for `first`
            raise InvalidInput(f"invalid page size {page_size}: expected 1 to 250")
        self.team_id, self.page_size = team_id, page_size
        self.transport = LinearTransport(
            api_key.strip(), base_url, timeout, max_retries, max_retry_wait, sleep, clock
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ, **options: Any) -> LinearClient:
        """``LINEAR_API_KEY`` and optional ``LINEAR_TEAM_ID`` / ``LINEAR_API_URL``."""
        options.setdefault("team_id", env.get("LINEAR_TEAM_ID") or None)
        options.setdefault("base_url", env.get("LINEAR_API_URL") or DEFAULT_URL)
        return cls(env.get(API_KEY_ENV), **options)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.transport.execute(query, variables)

    # -- lookups ---------------------------------------------------------------------

    def _native(self, subject_id: str) -> str:
        kind, native = split_subject_id(str(subject_id))
        if kind not in (None, self.kind):
            raise InvalidInput(
                f"subject id {subject_id!r} is of kind {kind!r}; this backend serves {self.kind!r}"
            )
        return native.strip()

    def _issue(self, subject_id: str) -> dict[str, Any]:
        issue = self.graphql(gql.Q_ISSUE, {"id": self._native(subject_id)}).get("issue")
        if not issue:
            raise NotFound(f"Linear issue {self._native(subject_id)} not found")
        return dict(issue)

    def _team_id(self, issue: Mapping[str, Any] | None = None) -> str:
        team = (issue or {}).get("team") or {}
        team_id = team.get("id") or self.team_id
        if not team_id:
            raise InvalidInput(
                "creating a Linear issue needs a team", fix="set LINEAR_TEAM_ID (or team_id)"
            )
        return str(team_id)

    def _states(self, team_id: str) -> tuple[str, list[dict[str, Any]]]:
        team = self.graphql(gql.Q_TEAM, {"id": team_id}).get("team") or {}
        return str(team.get("key") or team_id), list((team.get("states") or {}).get("nodes", []))

    def _label_ids(
        self, names: Iterable[str], team_id: str, create: Iterable[str] = ()
    ) -> list[str]:
        """Label names to ids, team labels before workspace ones; only ``create`` may be made."""
        wanted = list(clean_labels(names))
        if not wanted:
            return []
        nodes = self.graphql(gql.Q_LABELS, {"filter": {"name": {"in": wanted}}})["issueLabels"][
            "nodes"
        ]
        found: dict[str, str] = {}
        for node in sorted(nodes, key=lambda n: (n.get("team") or {}).get("id") != team_id):
            if (node.get("team") or {}).get("id") in (None, team_id):
                found.setdefault(str(node["name"]).lower(), str(node["id"]))
        ids = []
        for name in wanted:
            if name.lower() not in found:
                if name not in create:
                    raise InvalidInput(
                        f"Linear has no label {name!r} for this team",
                        fix="create the label in Linear first",
                    )
                made = self.graphql(
                    gql.M_LABEL_CREATE, {"input": {"name": name, "teamId": team_id}}
                )
                found[name.lower()] = str(made["issueLabelCreate"]["issueLabel"]["id"])
            ids.append(found[name.lower()])
        return ids

    def _user_id(self, assignee: str) -> str:
        if _UUID.fullmatch(assignee):
            return assignee
        nodes = self.graphql(gql.Q_USERS, {"filter": {"email": {"eq": assignee}}})["users"]["nodes"]
        if not nodes:
            raise NotFound(f"no Linear user with email {assignee!r}")
        return str(nodes[0]["id"])

    # -- the subject-store surface ---------------------------------------------------

    def get(self, subject_id: str) -> Subject:
        return gql.to_subject(self._issue(subject_id))

    def list(
        self,
        status: str | Iterable[str] | None = None,
        limit: int | None = None,
        labels: Iterable[str] | None = None,
    ) -> list[Subject]:
        """Issues in Linear's order, following ``pageInfo`` until ``limit`` is reached."""
        wanted = (
            None
            if status is None
            else {parse_status(s) for s in ([status] if isinstance(status, str) else status)}
        )
        clauses: list[dict[str, Any]] = []
        if self.team_id:
            clauses.append({"team": {"id": {"eq": self.team_id}}})
        types = gql.state_types_for(wanted) if wanted is not None else None
        if types is not None:
            clauses.append({"state": {"type": {"in": types}}})
        for label in clean_labels(labels):
            clauses.append({"labels": {"some": {"name": {"eq": label}}}})
        variables: dict[str, Any] = {"first": self.page_size, "after": None}
        if clauses:
            variables["filter"] = {"and": clauses}
        out: list[Subject] = []
        while limit is None or len(out) < limit:
            page = self.graphql(gql.Q_ISSUES, variables)["issues"]
            subjects = [gql.to_subject(node) for node in page["nodes"]]
            out.extend(s for s in subjects if wanted is None or s.status in wanted)
            info = page["pageInfo"]
            if not info.get("hasNextPage") or not info.get("endCursor"):
                break
            variables["after"] = info["endCursor"]
        return out if limit is None else out[:limit]

    def next(self) -> Subject | None:
        ready = sorted(self.list(status="ready"), key=lambda s: (s.priority, s.created_at or ""))
        return ready[0] if ready else None

    def create(
        self,
        title: str,
        description: str = "",
        status: str = "backlog",
        priority: str = "p2",
        labels: Iterable[str] = (),
        assignee: str | None = None,
        parent: str | None = None,
        custom: dict[str, Any] | None = None,
    ) -> Subject:
        if custom:
            raise InvalidInput("Linear issues have no custom fields; leave custom empty")
        if not str(title).strip():
            raise InvalidInput("a Linear issue needs a non-empty title")
        status = parse_status(status)
        team_id = self._team_id()
        team_key, states = self._states(team_id)
        state, add_blocked = gql.choose_state(states, {}, status, team_key)
        names = list(clean_labels(labels)) + ([gql.BLOCKED_LABEL] if add_blocked else [])
        payload: dict[str, Any] = {
            "teamId": team_id,
            "title": str(title).strip(),
            "description": description,
            "priority": gql.linear_priority(parse_priority(priority)),
            "stateId": state["id"],
            "labelIds": self._label_ids(names, team_id, create=[gql.BLOCKED_LABEL]),
        }
        if assignee:
            payload["assigneeId"] = self._user_id(assignee)
        if parent:
            payload["parentId"] = self._issue(parent)["id"]
        issue = self.graphql(gql.M_ISSUE_CREATE, {"input": payload})["issueCreate"]["issue"]
        subject = gql.to_subject(issue)
        return self._record_blocked(subject, "") if status == "blocked" else subject

    def update(self, subject_id: str, **fields: Any) -> Subject:
        """Change fields; a status goes to a workflow state (see ``choose_state``)."""
        check_fields(fields)
        for key in ("url", "custom"):
            if fields.get(key):
                raise InvalidInput(f"Linear issues cannot change {key!r} through Animus")
        issue = self._issue(subject_id)
        team_id = self._team_id(issue)
        current = gql.to_subject(issue)
        if fields.get("blocked_reason") and "status" not in fields and current.status != "blocked":
            raise InvalidInput(
                f"{current.id} is {current.status}, not blocked: set status blocked with the reason"
            )
        payload: dict[str, Any] = {}
        if "title" in fields:
            if not str(fields["title"] or "").strip():
                raise InvalidInput("a Linear issue needs a non-empty title")
            payload["title"] = str(fields["title"]).strip()
        if "description" in fields:
            payload["description"] = str(fields["description"] or "")
        if "priority" in fields:
            payload["priority"] = gql.linear_priority(parse_priority(fields["priority"]))
        if "assignee" in fields:
            payload["assigneeId"] = (
                self._user_id(fields["assignee"]) if fields["assignee"] else None
            )
        if "parent" in fields:
            payload["parentId"] = self._issue(fields["parent"])["id"] if fields["parent"] else None
        names = list(clean_labels(fields["labels"])) if "labels" in fields else list(current.labels)
        status = parse_status(fields["status"]) if "status" in fields else None
        if status is not None:
            team_key, states = self._states(team_id)
            state, add_blocked = gql.choose_state(
                states, issue.get("state") or {}, status, team_key
            )
            payload["stateId"] = state["id"]
            names = [n for n in names if n.lower() != gql.BLOCKED_LABEL]
            names += [gql.BLOCKED_LABEL] if add_blocked else []
        if "labels" in fields or names != list(current.labels):
            payload["labelIds"] = self._label_ids(names, team_id, create=[gql.BLOCKED_LABEL])
        result = self.graphql(gql.M_ISSUE_UPDATE, {"id": issue["id"], "input": payload})
        subject = gql.to_subject(result["issueUpdate"]["issue"])
        if status == "blocked" or (fields.get("blocked_reason") and current.status == "blocked"):
            return self._record_blocked(subject, str(fields.get("blocked_reason") or ""))
        return subject

    def set_status(self, subject_id: str, status: str, reason: str | None = None) -> Subject:
        fields: dict[str, Any] = {"status": status}
        if reason is not None:
            fields["blocked_reason"] = reason
        return self.update(subject_id, **fields)

    def _record_blocked(self, subject: Subject, reason: str) -> Subject:
        """Linear has no blocked-reason field: the reason goes in a comment people see.

        Only the returned subject carries ``blocked_reason``; a later ``get``
        does not read comments back.
        """
        blocked = apply_status(subject, "blocked", reason or DEFAULT_BLOCKED_REASON, utc_now())
        body = f"Blocked by Animus: {blocked.blocked_reason}"
        self.graphql(
            gql.M_COMMENT_CREATE, {"input": {"issueId": subject.custom["linear_id"], "body": body}}
        )
        return blocked


def _check_url(url: str) -> None:
    """The API key travels in every request: https, or plain http to this machine only (a test server)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    local = host == "localhost" or _is_loopback_ip(host)
    if parts.scheme == "https" or (parts.scheme == "http" and local):
        return
    raise InvalidInput(f"LINEAR_API_URL {url!r} would send the Linear API key in clear or to an unknown scheme",
                       fix="use an https:// URL (http:// only for a server on 127.0.0.1)")


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
