"""Push to a real bare repository, open pull requests against a loopback GitHub.

The stand-in speaks the shapes of GitHub's REST API for pulls
(https://docs.github.com/en/rest/pulls/pulls, version 2022-11-28): ``POST
/repos/{owner}/{repo}/pulls`` answers 201 with the pull request object, 422
``Validation Failed`` when one is already open for the head, and ``GET
…/pulls?head=owner:branch&state=open`` lists the open ones. It records every
request so the tests can check what Animus sent.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from _gitrepo import commit_file, isolate, make_project, sh

from animus.errors import InvalidInput
from animus.git import (
    GitError,
    GitHubAuthError,
    GitHubNotFound,
    GitHubUnavailable,
    MissingToken,
    open_pull_request,
    push_and_open_pr,
)
from animus.git.github import parse_remote

TOKEN = "ghp_loopbackTestToken0123456789"


@dataclass
class FakeGitHub:
    """GitHub's pulls API on 127.0.0.1, as far as Animus uses it."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    open_prs: dict[str, dict[str, Any]] = field(default_factory=dict)  # head branch -> PR object
    status: int | None = None  # force an error status for every request

    def pull(self, owner: str, repo: str, number: int, head: str, base: str, title: str, body: str) -> dict[str, Any]:
        web = f"https://github.com/{owner}/{repo}"
        return {"url": f"{self.url}/repos/{owner}/{repo}/pulls/{number}", "id": 1000 + number, "number": number,
                "state": "open", "title": title, "body": body, "draft": False,
                "html_url": f"{web}/pull/{number}", "user": {"login": "animus-bot", "type": "User"},
                "head": {"label": f"{owner}:{head}", "ref": head, "sha": "0" * 40,
                         "repo": {"full_name": f"{owner}/{repo}"}},
                "base": {"label": f"{owner}:{base}", "ref": base, "sha": "1" * 40,
                         "repo": {"full_name": f"{owner}/{repo}"}}}


def _handler(gh: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def record(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            seen = {"method": self.command, "path": self.path, "headers": dict(self.headers), "json": body}
            gh.requests.append(seen)
            return seen

        def do_POST(self) -> None:
            seen = self.record()
            if gh.status:
                return self.reply(gh.status, {"message": "Bad credentials" if gh.status == 401 else "Not Found",
                                              "documentation_url": "https://docs.github.com/rest"})
            owner, repo = self.path.split("/repos/", 1)[1].split("/")[:2]
            body = seen["json"]
            if body["head"] in gh.open_prs:
                return self.reply(422, {"message": "Validation Failed", "errors": [
                    {"resource": "PullRequest", "code": "custom",
                     "message": f"A pull request already exists for {owner}:{body['head']}."}],
                    "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                    "status": "422"})
            number = 42 + len(gh.open_prs)
            pr = gh.pull(owner, repo, number, body["head"], body["base"], body["title"], body["body"])
            gh.open_prs[body["head"]] = pr
            return self.reply(201, pr)

        def do_GET(self) -> None:
            self.record()
            query = parse_qs(urlsplit(self.path).query)
            head = query["head"][0].split(":", 1)[1]
            self.reply(200, [gh.open_prs[head]] if head in gh.open_prs and query["state"] == ["open"] else [])

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeGitHub, ThreadingHTTPServer]]:
    gh = FakeGitHub()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(gh))
    gh.url = f"http://127.0.0.1:{httpd.server_address[1]}/api/v3"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield gh, httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def github(server: tuple[FakeGitHub, ThreadingHTTPServer], monkeypatch: pytest.MonkeyPatch,
           tmp_path: Path) -> FakeGitHub:
    isolate(monkeypatch, tmp_path)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    gh = server[0]
    gh.requests.clear()
    gh.open_prs.clear()
    gh.status = None
    return gh


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "project")
    sh(tmp_path, "init", "-q", "--bare", str(tmp_path / "origin.git"))
    sh(root, "remote", "add", "origin", str(tmp_path / "origin.git"))
    sh(root, "switch", "-q", "-c", "animus/TASK-5")
    commit_file(root, "feature.txt", "feature\n")
    sh(root, "switch", "-q", "main")
    return root


def test_push_and_open_a_pull_request(github: FakeGitHub, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    pr = push_and_open_pr(project, "animus/TASK-5", base="main", title="TASK-5: add the feature",
                          body="Task TASK-5, workflow wf-1.", repository="acme/widgets", api_base=github.url)
    assert pr.as_dict() == {"number": 42, "url": "https://github.com/acme/widgets/pull/42",
                            "head": "animus/TASK-5", "base": "main"} and pr.created
    origin = project.parent / "origin.git"
    assert sh(origin, "rev-parse", "animus/TASK-5") == sh(project, "rev-parse", "animus/TASK-5")
    [request] = github.requests
    assert (request["method"], request["path"]) == ("POST", "/api/v3/repos/acme/widgets/pulls")
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["content-type"] == "application/json"
    assert request["json"] == {"title": "TASK-5: add the feature", "head": "animus/TASK-5", "base": "main",
                               "body": "Task TASK-5, workflow wf-1.", "draft": False}


def test_an_open_pull_request_is_found_not_duplicated(github: FakeGitHub, project: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)  # the second name GitHub's tools use
    first = push_and_open_pr(project, "animus/TASK-5", base="main", title="t", repository="acme/widgets",
                             api_base=github.url)
    again = push_and_open_pr(project, "animus/TASK-5", base="main", title="t", repository="acme/widgets",
                             api_base=github.url)
    assert (again.number, again.url, again.created) == (first.number, first.url, False)
    assert [(r["method"], r["path"]) for r in github.requests] == [
        ("POST", "/api/v3/repos/acme/widgets/pulls"), ("POST", "/api/v3/repos/acme/widgets/pulls"),
        ("GET", "/api/v3/repos/acme/widgets/pulls?head=acme%3Aanimus%2FTASK-5&state=open")]


def test_a_missing_token_fails_before_anything_is_pushed(github: FakeGitHub, project: Path) -> None:
    with pytest.raises(MissingToken) as err:
        push_and_open_pr(project, "animus/TASK-5", base="main", title="t", repository="acme/widgets",
                         api_base=github.url)
    assert err.value.one_line() == ("no GitHub token: GH_TOKEN and GITHUB_TOKEN are both unset (fix: export "
                                    "GH_TOKEN=<a token with pull-request write access> before starting the daemon)")
    assert err.value.exit_code == 2
    assert sh(project.parent / "origin.git", "branch", "--list") == "" and github.requests == []


@pytest.mark.parametrize(("status", "error", "text"), [
    (401, GitHubAuthError, "GitHub rejected the token (401): Bad credentials"),
    (403, GitHubAuthError, "GitHub refused the pull request on acme/widgets (403)"),
    (404, GitHubNotFound, "GitHub has no repository acme/widgets, or the token cannot see it (404)"),
    (503, GitHubUnavailable, "GitHub failed (503)"),
])
def test_github_refusals_are_clear(github: FakeGitHub, status: int, error: type[Exception], text: str) -> None:
    github.status = status
    with pytest.raises(error) as err:
        open_pull_request(owner="acme", repo="widgets", head="b", base="main", title="t", token=TOKEN,
                          api_base=github.url)
    assert text in str(err.value) and TOKEN not in str(err.value) and "\n" not in str(err.value)


def test_an_unreachable_github_is_unavailable(github: FakeGitHub) -> None:
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(GitHubUnavailable, match=f"cannot reach GitHub at http://127.0.0.1:{port}/api/v3"):
        open_pull_request(owner="acme", repo="widgets", head="b", base="main", title="t", token=TOKEN,
                          api_base=f"http://127.0.0.1:{port}/api/v3", timeout=5)


def test_a_push_rejected_by_the_remote_says_so(github: FakeGitHub, project: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    sh(project, "remote", "set-url", "origin", str(project.parent / "missing.git"))
    with pytest.raises(GitError, match="git push origin animus/TASK-5 failed") as err:
        push_and_open_pr(project, "animus/TASK-5", base="main", title="t", repository="acme/widgets",
                         api_base=github.url)
    assert f"git -C {project} push origin animus/TASK-5 by hand" in str(err.value.fix)
    assert github.requests == []


@pytest.mark.parametrize("url", [
    "https://github.com/acme/widgets.git", "https://github.com/acme/widgets", "https://x:tok@ghe.example/acme/widgets/",
    "git@github.com:acme/widgets.git", "ssh://git@github.com:22/acme/widgets.git", "github.com:acme/widgets",
])
def test_owner_and_repository_come_from_the_remote_url(url: str) -> None:
    assert parse_remote(url) == ("acme", "widgets")


@pytest.mark.parametrize("url", ["/srv/git/widgets.git", "https://github.com/acme", "file:///tmp/x.git"])
def test_a_remote_url_without_owner_and_repository_asks_for_them(url: str) -> None:
    with pytest.raises(InvalidInput, match="cannot tell the GitHub owner/repository from the remote URL") as err:
        parse_remote(url)
    assert err.value.fix == "set post_success.merge.create_pr.repository: owner/name"
