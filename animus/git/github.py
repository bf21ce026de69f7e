"""Push a run's branch and open a pull request through GitHub's REST API.

:func:`push_branch` is ``git push <remote> refs/heads/<b>:refs/heads/<b>``
through :func:`animus.git.repo.git` (no prompts: a missing credential fails).
:func:`open_pull_request` is ``POST {api_base}/repos/{owner}/{repo}/pulls``
with ``{title, head, base, body, draft}`` and the headers GitHub documents
(``Authorization: Bearer``, ``Accept: application/vnd.github+json``,
``X-GitHub-Api-Version: 2022-11-28``). When GitHub answers 422 because a pull
request for the branch is already open, that one is looked up
(``GET …/pulls?head=<owner>:<branch>&state=open``) and returned, so opening is
idempotent across retries.

The token comes from the argument, else ``GH_TOKEN``, else ``GITHUB_TOKEN``;
the API base from the argument, else ``GITHUB_API_URL`` (as GitHub Actions
sets it), else ``https://api.github.com``; for GitHub Enterprise it is
``https://<host>/api/v3``. Owner and repository come from the remote's URL
(``https://host/o/r(.git)``, ``git@host:o/r.git``, ``ssh://git@host/o/r``) or
are given explicitly (needed when the remote is a local path). The token
never appears in a message.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animus.errors import InvalidInput, NotFound, Unavailable
from animus.git.repo import GitError, git, last_line

__all__ = [
    "DEFAULT_API",
    "GitHubAuthError",
    "GitHubError",
    "GitHubNotFound",
    "GitHubUnavailable",
    "MissingToken",
    "PullRequest",
    "github_token",
    "open_pull_request",
    "parse_remote",
    "push_and_open_pr",
    "push_branch",
    "remote_url",
]

DEFAULT_API = "https://api.github.com"
API_VERSION = "2022-11-28"
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")  # git@host:o/r.git


class GitHubError(Unavailable):
    """GitHub refused or could not be reached; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, fix: str | None = None, status: int | None = None) -> None:
        super().__init__(message, fix=fix, details={"status": status} if status else None)
        self.status = status


class MissingToken(GitHubError):
    """Neither GH_TOKEN nor GITHUB_TOKEN is set: the operator's input is missing."""

    code = InvalidInput.code
    exit_code = InvalidInput.exit_code


class GitHubAuthError(GitHubError):
    """401 (bad token) or 403 (token without the rights, or rate-limited)."""


class GitHubNotFound(GitHubError):
    """404: the repository does not exist, or the token cannot see it."""

    code = NotFound.code
    exit_code = NotFound.exit_code


class GitHubUnavailable(GitHubError):
    """The network failed, or GitHub answered 5xx."""


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str        # the page a human opens (html_url)
    head: str
    base: str
    created: bool   # False when it already existed

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "url": self.url, "head": self.head, "base": self.base}


def remote_url(repo: Path, remote: str = "origin") -> str:
    out = git(repo, "remote", "get-url", "--", remote, check=False)
    if not out.ok:
        raise GitError(f"the repository {repo} has no remote named {remote}",
                       fix=f"git -C {repo} remote add {remote} <url>, or set create_pr.remote")
    return out.stdout.strip()


def parse_remote(url: str) -> tuple[str, str]:
    """``(owner, repo)`` from a GitHub remote URL (https, ssh, scp-like forms)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("https", "http", "ssh", "git") and parsed.netloc:
        path = parsed.path
    else:
        scp = _SCP.match(url) if "://" not in url else None
        path = scp.group("path") if scp else ""
    parts = [p for p in path.strip("/").removesuffix(".git").split("/") if p]
    if len(parts) != 2:
        raise InvalidInput(f"cannot tell the GitHub owner/repository from the remote URL {url!r}",
                           fix="set post_success.merge.create_pr.repository: owner/name")
    return parts[0], parts[1]


def github_token(explicit: str | None = None) -> str:
    token = explicit or os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
    if not token:
        raise MissingToken("no GitHub token: GH_TOKEN and GITHUB_TOKEN are both unset",
                           fix="export GH_TOKEN=<a token with pull-request write access> before starting the daemon")
    return token


def push_branch(repo: Path, branch: str, remote: str = "origin", *, timeout: float = 120.0) -> None:
    """Push ``branch`` to ``remote`` under the same name."""
    out = git(repo, "push", "--porcelain", "--", remote, f"refs/heads/{branch}:refs/heads/{branch}",
              check=False, timeout=timeout)
    if not out.ok:
        raise GitError(f"git push {remote} {branch} failed: {last_line(out.stderr or out.stdout)}",
                       command=out.args, returncode=out.returncode, stderr=out.stderr,
                       fix=f"git -C {repo} push {remote} {branch} by hand to see why (credentials, "
                           "branch protection, a diverged remote branch)")


def _request(method: str, url: str, token: str, body: dict[str, Any] | None, timeout: float) -> tuple[int, Any]:
    import urllib.error  # with http.client, email and ssl: imported by the runner that delivers a PR, not by every one
    import urllib.request

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
               "X-GitHub-Api-Version": API_VERSION, "User-Agent": "animus"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, {"message": raw.decode(errors="replace")[:200]}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GitHubUnavailable(f"cannot reach GitHub at {url.split('/repos/')[0]}: {reason}",
                                fix="check the network, or create_pr.api_base / GITHUB_API_URL") from None


def _message(payload: Any) -> str:
    if not isinstance(payload, dict):
        return "no message"
    details = [str(e.get("message") or e.get("code")) for e in payload.get("errors") or [] if isinstance(e, dict)]
    return "; ".join([str(payload.get("message", "no message")), *details])


def _fail(status: int, payload: Any, owner: str, repo: str) -> GitHubError:
    said = _message(payload)
    if status == 401:
        return GitHubAuthError(f"GitHub rejected the token (401): {said}", status=status,
                               fix="set GH_TOKEN to a valid token (gh auth token prints one)")
    if status == 403:
        return GitHubAuthError(f"GitHub refused the pull request on {owner}/{repo} (403): {said}", status=status,
                               fix="give the token pull-request write access to the repository, "
                                   "or wait if this is a rate limit")
    if status == 404:
        return GitHubNotFound(f"GitHub has no repository {owner}/{repo}, or the token cannot see it (404)",
                              status=status, fix="check create_pr.repository and the token's repository access")
    if status >= 500:
        return GitHubUnavailable(f"GitHub failed ({status}): {said}", status=status, fix="try again later")
    return GitHubError(f"GitHub refused the pull request on {owner}/{repo} ({status}): {said}", status=status,
                       fix="push the branch first and check that it differs from the base branch")


def _pr(payload: Any, created: bool) -> PullRequest:
    return PullRequest(number=int(payload["number"]), url=str(payload["html_url"]),
                       head=str(payload["head"]["ref"]), base=str(payload["base"]["ref"]), created=created)


def open_pull_request(*, owner: str, repo: str, head: str, base: str, title: str, body: str = "",
                      token: str | None = None, api_base: str | None = None, draft: bool = False,
                      timeout: float = 30.0) -> PullRequest:
    """Open a pull request from ``head`` into ``base``, or return the open one for ``head``."""
    secret = github_token(token)
    api = (api_base or os.environ.get("GITHUB_API_URL") or DEFAULT_API).rstrip("/")
    pulls = f"{api}/repos/{urllib.parse.quote(owner)}/{urllib.parse.quote(repo)}/pulls"
    status, payload = _request("POST", pulls, secret, {"title": title, "head": head, "base": base, "body": body,
                                                       "draft": draft}, timeout)
    if status == 201:
        return _pr(payload, created=True)
    if status == 422 and "already exists" in _message(payload):
        query = urllib.parse.urlencode({"head": f"{owner}:{head}", "state": "open"})
        status, found = _request("GET", f"{pulls}?{query}", secret, None, timeout)
        if status == 200 and isinstance(found, list) and found:
            return _pr(found[0], created=False)
        if status != 200:
            raise _fail(status, found, owner, repo)
    raise _fail(status, payload, owner, repo)


def push_and_open_pr(repo_dir: Path, branch: str, *, base: str, title: str, body: str = "",
                     remote: str = "origin", repository: str | None = None, api_base: str | None = None,
                     token: str | None = None, draft: bool = False) -> PullRequest:
    """Push ``branch`` to ``remote`` and open (or find) its pull request into ``base``.

    The token is checked before pushing, so a missing one fails with nothing done.
    """
    secret = github_token(token)
    owner, name = repository.split("/", 1) if repository else parse_remote(remote_url(repo_dir, remote))
    push_branch(repo_dir, branch, remote)
    return open_pull_request(owner=owner, repo=name, head=branch, base=base, title=title, body=body,
                             token=secret, api_base=api_base, draft=draft)
