"""The OpenAI-compatible provider against a real local HTTP server speaking the SSE wire format."""

from __future__ import annotations

import email.utils
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from animus.plugins.providers.events import Final, SessionStarted, TextDelta, Usage
from animus.plugins.providers.oai.engine import (
    OaiClient,
    OaiConfig,
    OaiError,
    OaiRateLimited,
    chat_url,
    retry_after_seconds,
)
from animus.plugins.providers.verdict import extract_verdict

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "providers"))
from oai_server import DEFAULT_REPLY, OaiServer

NOW = 1_760_000_000.0


@pytest.fixture
def server() -> Iterator[OaiServer]:
    with OaiServer(token="test-token") as srv:
        yield srv


def client(
    server: OaiServer, tmp_path: Path, sleeps: list[float] | None = None, **config: Any
) -> OaiClient:
    cfg = OaiConfig(
        base_url=server.url,
        model="qwen2.5-coder",
        state_dir=tmp_path,
        api_key="test-token",
        timeout=10,
        **config,
    )
    return OaiClient(cfg, sleep=sleeps.append if sleeps is not None else None, clock=lambda: NOW)


def test_streams_deltas_usage_and_final(server: OaiServer, tmp_path: Path) -> None:
    events: list[Any] = []
    result = client(server, tmp_path).run(
        "Review the change.", system_prompt="You review code.", on_event=events.append
    )

    assert events[0] == SessionStarted(result.session_id, "qwen2.5-coder")  # type: ignore[arg-type]
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == len(server.chunks()) > 1 and "".join(deltas) == DEFAULT_REPLY
    assert events[-2] == Usage(20, len(server.chunks()), None) and events[-1] == Final(
        DEFAULT_REPLY
    )
    assert result.ok and result.final_text == DEFAULT_REPLY
    assert (result.input_tokens, result.output_tokens) == (20, len(server.chunks()))
    assert extract_verdict(result.final_text)["verdict"] == "advance"  # type: ignore[index]

    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer test-token"
    assert request["body"]["stream"] is True and request["body"]["stream_options"] == {
        "include_usage": True
    }
    assert request["body"]["messages"] == [
        {"role": "system", "content": "You review code."},
        {"role": "user", "content": "Review the change."},
    ]


def test_resume_sends_the_saved_history(server: OaiServer, tmp_path: Path) -> None:
    first = client(server, tmp_path).run("First question", system_prompt="sys")
    saved = json.loads((tmp_path / "sessions" / f"{first.session_id}.json").read_text())
    assert [m["role"] for m in saved["messages"]] == ["system", "user", "assistant"]

    assert first.session_id is not None
    again = client(server, tmp_path).resume(first.session_id, "Follow-up")  # a fresh client: state is on disk
    assert again.session_id == first.session_id and again.ok
    assert server.requests[1]["body"]["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": DEFAULT_REPLY},
        {"role": "user", "content": "Follow-up"},
    ]
    saved = json.loads((tmp_path / "sessions" / f"{first.session_id}.json").read_text())
    assert len(saved["messages"]) == 5
    assert [p.name for p in (tmp_path / "sessions").iterdir()] == [
        f"{first.session_id}.json"
    ]  # no temp files left


def test_resume_of_an_unknown_session(server: OaiServer, tmp_path: Path) -> None:
    with pytest.raises(OaiError, match="no saved oai session nope"):
        client(server, tmp_path).resume("nope", "hi")
    with pytest.raises(OaiError, match="invalid session id"):
        client(server, tmp_path).resume("../../etc/passwd", "hi")


def test_429_honours_retry_after_seconds(server: OaiServer, tmp_path: Path) -> None:
    server.script(("status", 429, {"Retry-After": "7"}), ("success",))
    sleeps: list[float] = []
    result = client(server, tmp_path, sleeps).run("hi")
    assert result.ok and sleeps == [7.0] and len(server.requests) == 2


def test_429_honours_retry_after_http_date(server: OaiServer, tmp_path: Path) -> None:
    server.script(
        ("status", 429, {"Retry-After": email.utils.formatdate(NOW + 12, usegmt=True)}),
        ("success",),
    )
    sleeps: list[float] = []
    assert client(server, tmp_path, sleeps).run("hi").ok
    assert sleeps == [pytest.approx(12.0)]


def test_5xx_backs_off_exponentially(server: OaiServer, tmp_path: Path) -> None:
    server.script(("status", 500, {}), ("status", 503, {}), ("status", 502, {}), ("success",))
    sleeps: list[float] = []
    assert client(server, tmp_path, sleeps, backoff_base=0.5).run("hi").ok
    assert sleeps == [0.5, 1.0, 2.0] and len(server.requests) == 4


def test_backoff_is_capped(server: OaiServer, tmp_path: Path) -> None:
    server.script(*[("status", 500, {})] * 3)
    sleeps: list[float] = []
    assert client(server, tmp_path, sleeps, backoff_base=4, max_backoff=10).run("hi").ok
    assert sleeps == [4, 8, 10]


def test_429_exhausted_raises_rate_limited(server: OaiServer, tmp_path: Path) -> None:
    server.script(*[("status", 429, {"Retry-After": "3"})] * 5)
    sleeps: list[float] = []
    with pytest.raises(OaiRateLimited) as info:
        client(server, tmp_path, sleeps, max_retries=2).run("hi")
    assert sleeps == [3.0, 3.0] and info.value.attempts == 3
    assert info.value.rate_limited.reset_at == NOW + 3
    assert "rate limited (HTTP 429): simulated 429" in info.value.rate_limited.message
    assert not (tmp_path / "sessions").exists()  # a failed turn saves nothing


def test_429_longer_than_the_cap_gives_up_at_once(server: OaiServer, tmp_path: Path) -> None:
    server.script(("status", 429, {"Retry-After": "3600"}))
    sleeps: list[float] = []
    with pytest.raises(OaiRateLimited) as info:
        client(server, tmp_path, sleeps, max_backoff=60).run("hi")
    assert sleeps == [] and info.value.rate_limited.reset_at == NOW + 3600


def test_5xx_exhausted_is_a_retryable_error(server: OaiServer, tmp_path: Path) -> None:
    server.script(*[("status", 503, {})] * 3)
    with pytest.raises(OaiError) as info:
        client(server, tmp_path, [], max_retries=2).run("hi")
    assert not isinstance(info.value, OaiRateLimited)
    assert info.value.status == 503 and info.value.event.retryable  # type: ignore[union-attr]
    assert info.value.event.message == "oai: HTTP 503 after 3 attempts: simulated 503"  # type: ignore[union-attr]


def test_wrong_key_is_not_retried(server: OaiServer, tmp_path: Path) -> None:
    cfg = OaiConfig(base_url=server.url, model="m", state_dir=tmp_path, api_key="wrong")
    with pytest.raises(OaiError) as info:
        OaiClient(cfg, sleep=lambda s: None).run("hi")
    assert info.value.status == 401 and len(server.requests) == 1
    assert str(info.value) == "oai: HTTP 401: Incorrect API key provided"


def test_a_dropped_stream_is_not_retried_after_text_was_forwarded(
    server: OaiServer, tmp_path: Path
) -> None:
    server.script(("drop",))
    events: list[Any] = []
    with pytest.raises(OaiError) as info:
        client(server, tmp_path, []).run("hi", on_event=events.append)
    assert len(server.requests) == 1 and info.value.event.retryable  # type: ignore[union-attr]
    assert any(isinstance(e, TextDelta) for e in events)


def test_in_stream_error(server: OaiServer, tmp_path: Path) -> None:
    server.script(("stream_error",))
    with pytest.raises(OaiError, match="The server had an error"):
        client(server, tmp_path, []).run("hi")


def test_unreachable_server_is_retried_then_reported(tmp_path: Path) -> None:
    cfg = OaiConfig(base_url="http://127.0.0.1:9/v1", model="m", state_dir=tmp_path, max_retries=2)
    sleeps: list[float] = []
    with pytest.raises(OaiError, match=r"^oai: http://127.0.0.1:9/v1/chat/completions: ") as info:
        OaiClient(cfg, sleep=sleeps.append).run("hi")
    assert sleeps == [1.0, 2.0] and info.value.event.retryable  # type: ignore[union-attr]


def test_real_sleep_with_zero_retry_after(server: OaiServer, tmp_path: Path) -> None:
    server.script(("status", 429, {"Retry-After": "0"}))
    assert client(server, tmp_path).run("hi").ok


def test_cancel_between_chunks(server: OaiServer, tmp_path: Path) -> None:
    server.script(("slow", 0.05))
    cancel = threading.Event()
    with pytest.raises(OaiError, match="^cancelled$"):
        client(server, tmp_path).run(
            "hi",
            on_event=lambda e: cancel.set() if isinstance(e, TextDelta) else None,
            cancel=cancel,
        )


def test_server_that_ignores_stream_true(server: OaiServer, tmp_path: Path) -> None:
    class NoStream(OaiClient):
        pass

    cfg = OaiConfig(base_url=server.url, model="m", state_dir=tmp_path, api_key="test-token")
    c = NoStream(cfg)
    original = c._post

    def without_stream(body: bytes, *args: Any) -> Any:
        data = json.loads(body)
        data["stream"] = False
        return original(json.dumps(data).encode(), *args)

    c._post = without_stream  # type: ignore[method-assign]
    result = c.run("hi")
    assert result.final_text == DEFAULT_REPLY and result.input_tokens == 10


def test_without_usage_chunk(server: OaiServer, tmp_path: Path) -> None:
    events: list[Any] = []
    result = client(server, tmp_path, include_usage=False).run("hi", on_event=events.append)
    assert "stream_options" not in server.requests[0]["body"]
    assert not any(isinstance(e, Usage) for e in events) and result.input_tokens == 0


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/chat/completions"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1/chat/completions"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/chat/completions"),
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1/chat/completions"),
    ],
)
def test_chat_url(base: str, url: str) -> None:
    assert chat_url(base) == url


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("5", NOW) == 5.0
    assert retry_after_seconds(email.utils.formatdate(NOW - 10, usegmt=True), NOW) == 0.0
    assert retry_after_seconds("soon", NOW) is None and retry_after_seconds(None, NOW) is None
