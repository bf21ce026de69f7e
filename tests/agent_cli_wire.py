"""The vendors' wire formats for ``agent_cli_server``: which request is whose, and the SSE replies.

Four dialects, each as its CLI uses it (checked against the CLIs' requests):

* ``anthropic``: ``POST /v1/messages`` with ``stream: true``; SSE events
  ``message_start``, ``content_block_start|delta|stop`` (``text_delta``,
  ``input_json_delta`` for a ``tool_use`` block), ``message_delta`` (stop
  reason, usage), ``message_stop``. Tool results come back as ``tool_result``
  blocks in user messages.
* ``responses`` (Codex): ``POST /v1/responses``; SSE ``response.created``,
  ``response.output_item.added|done``, ``response.output_text.delta``,
  ``response.completed`` (usage). Tool results are ``function_call_output``
  input items.
* ``chat`` (opencode's OpenAI-compatible provider): ``POST
  /v1/chat/completions``; ``chat.completion.chunk`` deltas with ``tool_calls``,
  a usage chunk, ``data: [DONE]``. Tool results are ``role: tool`` messages.
* ``gemini``: ``POST /v1beta/models/<model>:streamGenerateContent?alt=sse``;
  each SSE ``data:`` is a ``GenerateContentResponse`` (``candidates[0].content.parts``
  with ``text`` or ``functionCall``, ``usageMetadata``). Tool results are
  ``functionResponse`` parts.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from collections.abc import Iterator
from typing import Any

__all__ = ["has_tools", "is_stream", "models_list", "plain_reply", "stream", "tool_results", "vendor_of"]

USAGE_IN, USAGE_OUT = 120, 30  # every scripted turn reports these tokens


def vendor_of(path: str) -> str | None:
    route = path.split("?", 1)[0]
    if route.endswith("/messages"):
        return "anthropic"
    if route.endswith("/responses"):
        return "responses"
    if route.endswith("/chat/completions"):
        return "chat"
    if ":streamGenerateContent" in route or ":generateContent" in route or ":countTokens" in route:
        return "gemini"
    if route.endswith("/models"):
        return "models"
    return None


def is_stream(vendor: str, path: str, body: dict[str, Any]) -> bool:
    if vendor == "gemini":
        return ":streamGenerateContent" in path
    return bool(body.get("stream"))


def has_tools(vendor: str, body: dict[str, Any]) -> bool:
    return bool(body.get("tools"))


def tool_results(vendor: str, body: dict[str, Any]) -> int:
    """How many tool results the conversation already holds (the script's step)."""
    if vendor == "anthropic":  # a ToolSearch (Claude loading a deferred MCP tool) is not a step of the script
        blocks = [b for m in body.get("messages") or [] if isinstance(m.get("content"), list)
                  for b in m["content"] if isinstance(b, dict)]
        searches = {b.get("id") for b in blocks if b.get("type") == "tool_use" and b.get("name") == "ToolSearch"}
        return sum(1 for b in blocks if b.get("type") == "tool_result" and b.get("tool_use_id") not in searches)
    if vendor == "responses":
        return sum(1 for i in body.get("input") or []
                   if isinstance(i, dict) and str(i.get("type", "")).endswith("call_output"))
    if vendor == "chat":
        return sum(1 for m in body.get("messages") or [] if m.get("role") == "tool")
    if vendor == "gemini":  # distinct ids: 0.61.0 repeats a tool response in a resumed history
        return len({json.dumps(p["functionResponse"].get("id") or i) for c in body.get("contents") or []
                    for i, p in enumerate(c.get("parts") or []) if isinstance(p, dict) and "functionResponse" in p})
    return 0


def models_list(vendor: str | None) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "scripted", "object": "model"}], "models": []}


def plain_reply(vendor: str, body: dict[str, Any], text: str) -> dict[str, Any]:
    """A non-streaming answer for a CLI's side calls."""
    if vendor == "anthropic":
        return {"id": _id("msg"), "type": "message", "role": "assistant", "model": body.get("model"),
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
    if vendor == "gemini":
        return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                "finishReason": "STOP", "index": 0}],
                "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
                "totalTokens": 1}
    return {"id": _id("chatcmpl"), "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def rate_limit_body(vendor: str, retry_after: int) -> dict[str, Any]:
    """Each vendor's documented 429 error body."""
    if vendor == "anthropic":
        return {"type": "error", "error": {"type": "rate_limit_error",
                                           "message": "Number of requests has exceeded your rate limit."}}
    if vendor == "gemini":
        return {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                          "message": f"You exceeded your current quota. Please retry in {retry_after}s.",
                          "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                       "retryDelay": f"{retry_after}s"}]}}
    return {"error": {"message": f"Rate limit reached for requests. Please try again in {retry_after}s.",
                      "type": "requests", "param": None, "code": "rate_limit_exceeded"}}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


# -- which tool a step becomes, per vendor ---------------------------------------------------
_CWD = re.compile(r"Primary working directory: ([^\s\\\"]+)")


def _mcp_name(vendor: str, body: dict[str, Any], step: Any) -> str | None:
    """The CLI's own name for an MCP tool, found among the tools the request offers."""
    found = sorted(n for n in _tool_names(vendor, body)
                   if n.endswith(step.tool) and step.server in n[: -len(step.tool)])
    return found[0] if found else None


def _tool_call(vendor: str, body: dict[str, Any], step: Any) -> tuple[str, dict[str, Any]]:
    from agent_cli_server import McpTool, Shell

    if isinstance(step, McpTool):
        name = _mcp_name(vendor, body, step)
        if name is None:  # Claude defers MCP tools: load it first, as a model would
            return "ToolSearch", {"query": f"select:mcp__{step.server}__{step.tool}", "max_results": 5}
        return name, dict(step.arguments)

    if vendor == "anthropic":
        if isinstance(step, Shell):
            return "Bash", {"command": step.command, "description": "scripted command"}
        found = _CWD.search(json.dumps(body))
        cwd = found.group(1) if found else "."
        return "Write", {"file_path": f"{cwd}/{step.path}", "content": step.content}
    command = step.command if isinstance(step, Shell) else _write_command(step)
    if vendor == "responses":
        return "exec_command", {"cmd": command}
    names = _tool_names(vendor, body)
    if vendor == "gemini":
        if isinstance(step, Shell) or "write_file" not in names:
            return "run_shell_command", {"command": command, "description": "scripted command"}
        return "write_file", {"file_path": step.path, "content": step.content}
    if vendor == "chat":
        if isinstance(step, Shell) or "write" not in names:
            return "bash", {"command": command, "description": "scripted command"}
        return "write", {"filePath": step.path, "content": step.content}
    raise NotImplementedError(vendor)


def _tool_names(vendor: str, body: dict[str, Any]) -> set[str]:
    if vendor == "gemini":
        return {str(d.get("name")) for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []}
    tools = body.get("tools") or []
    # Codex offers an MCP server's tools as a Responses "namespace" (mcp__animus) of functions: <ns>::<name>
    nested = {f"{t['name']}::{f.get('name')}" for t in tools if t.get("type") == "namespace" for f in t.get("tools") or []}
    return nested | {str(t.get("name") or (t.get("function") or {}).get("name")) for t in tools}


def _write_command(step: Any) -> str:
    return f"printf %s {shlex.quote(step.content)} > {shlex.quote(step.path)}"


def stream(vendor: str, body: dict[str, Any], step: Any) -> Iterator[bytes]:
    from agent_cli_server import McpTool, Say

    offered = _tool_names(vendor, body)
    if isinstance(step, McpTool) and _mcp_name(vendor, body, step) is None and "ToolSearch" not in offered:
        step = Say(f"[scripted server] {vendor} offered no tool {step.tool} of MCP server {step.server}: "
                   f"{sorted(_tool_names(vendor, body))}")

    text = step.text if isinstance(step, Say) else None
    tool = None if isinstance(step, Say) else _tool_call(vendor, body, step)
    if vendor == "anthropic":
        return _anthropic(body, text, tool)
    if vendor == "responses":
        return _responses(body, text, tool)
    if vendor == "gemini":
        return _gemini(text, tool)
    if vendor == "chat":
        return _chat(body, text, tool)
    raise NotImplementedError(vendor)


def _anthropic(body: dict[str, Any], text: str | None, tool: tuple[str, dict[str, Any]] | None) -> Iterator[bytes]:
    yield _sse("message_start", {"type": "message_start", "message": {
        "id": _id("msg"), "type": "message", "role": "assistant", "model": body.get("model"), "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": USAGE_IN, "output_tokens": 1}}})
    if text is not None:
        yield _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})
        for piece in _pieces(text):
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": piece}})
    else:
        assert tool is not None
        yield _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": _id("toolu"), "name": tool[0], "input": {}}})
        yield _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                           "delta": {"type": "input_json_delta", "partial_json": json.dumps(tool[1])}})
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    stop = "end_turn" if text is not None else "tool_use"
    yield _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                 "usage": {"output_tokens": USAGE_OUT}})
    yield _sse("message_stop", {"type": "message_stop"})


def _pieces(text: str, size: int = 40) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _responses(body: dict[str, Any], text: str | None, tool: tuple[str, dict[str, Any]] | None) -> Iterator[bytes]:
    rid = _id("resp")
    yield _sse("response.created", {"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
    if text is not None:
        mid = _id("msg")
        yield _sse("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": {
            "type": "message", "id": mid, "role": "assistant", "status": "in_progress", "content": []}})
        for piece in _pieces(text):
            yield _sse("response.output_text.delta", {"type": "response.output_text.delta", "item_id": mid,
                                                      "output_index": 0, "content_index": 0, "delta": piece})
        item: dict[str, Any] = {"type": "message", "id": mid, "role": "assistant", "status": "completed",
                                "content": [{"type": "output_text", "text": text, "annotations": []}]}
    else:
        assert tool is not None
        namespace, _, name = tool[0].rpartition("::")
        item = {"type": "function_call", "id": _id("fc"), "call_id": _id("call"), "name": name,
                "arguments": json.dumps(tool[1]), "status": "completed", **({"namespace": namespace} if namespace else {})}
        yield _sse("response.output_item.added", {"type": "response.output_item.added", "output_index": 0,
                                                  "item": item | {"status": "in_progress", "arguments": ""}})
    yield _sse("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item})
    yield _sse("response.completed", {"type": "response.completed", "response": {
        "id": rid, "status": "completed", "output": [item],
        "usage": {"input_tokens": USAGE_IN, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": USAGE_OUT, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": USAGE_IN + USAGE_OUT}}})


def _gemini(text: str | None, tool: tuple[str, dict[str, Any]] | None) -> Iterator[bytes]:
    def chunk(parts: list[dict[str, Any]], finish: str | None) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        data: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-scripted"}
        if finish:
            candidate["finishReason"] = finish
            data["usageMetadata"] = {"promptTokenCount": USAGE_IN, "candidatesTokenCount": USAGE_OUT,
                                     "totalTokenCount": USAGE_IN + USAGE_OUT}
        return _sse(None, data)

    if text is not None:
        pieces = _pieces(text)
        for i, piece in enumerate(pieces):
            yield chunk([{"text": piece}], "STOP" if i == len(pieces) - 1 else None)
    else:
        assert tool is not None
        yield chunk([{"functionCall": {"name": tool[0], "args": tool[1]}}], "STOP")


def _chat(body: dict[str, Any], text: str | None, tool: tuple[str, dict[str, Any]] | None) -> Iterator[bytes]:
    cid, model = _id("chatcmpl"), body.get("model")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(None, {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    yield chunk({"role": "assistant", "content": ""})
    if text is not None:
        for piece in _pieces(text):
            yield chunk({"content": piece})
        yield chunk({}, "stop")
    else:
        assert tool is not None
        yield chunk({"tool_calls": [{"index": 0, "id": _id("call"), "type": "function",
                                     "function": {"name": tool[0], "arguments": json.dumps(tool[1])}}]})
        yield chunk({}, "tool_calls")
    yield _sse(None, {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
                      "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                                "total_tokens": USAGE_IN + USAGE_OUT}})
    yield b"data: [DONE]\n\n"
