"""The MCP server: the tool table on the SDK's low-level ``Server``, over stdio or HTTP.

The low-level server (not the decorator-based ``MCPServer``) because the
tools' JSON schemas are written out (``tools``) and an error must read
exactly as the CLI prints it. A call is: look the tool up, check its
arguments against its schema, run its handler (control calls), answer. Any
``AnimusError`` — bad arguments, not found, conflict, the daemon down —
becomes a tool result with ``isError: true`` whose text is the CLI's line
(``error: <message> (fix: <fix>)``) and whose structured content is
``{"error": {code, message, fix?, exit_code}}``; a bug in a handler is an
``internal`` tool error, never a dropped connection. A success is the
result as compact JSON text and as structured content.

Transports: stdio (the default, what agent CLIs spawn), or streamable HTTP
on 127.0.0.1 (``/mcp``) behind the transports' bearer token. Stopping: EOF
on stdin ends a stdio server; SIGINT/SIGTERM end an HTTP one (uvicorn's
handlers). Nothing is left behind either way: the server writes no state.
"""

from __future__ import annotations

import json
import socket
import sys
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from animus import __version__
from animus.errors import AnimusError, Internal, InvalidInput
from animus.mcp.arguments import check_arguments
from animus.mcp.calls import Call, Tool
from animus.mcp.link import DaemonLink
from animus.mcp.run_env import RunEnv
from animus.mcp.tools import TOOLS

__all__ = ["build_server", "serve_stdio", "serve_http", "call_tool", "MCP_PATH"]

MCP_PATH = "/mcp"
INSTRUCTIONS = ("Animus's board and workflows. Subjects (tasks, requirements …) through subject_*; runs through "
                "workflow_*. Leave an id out to mean the task or run this server was started for.")


def _text(payload: dict[str, Any]) -> types.TextContent:
    return types.TextContent(type="text", text=json.dumps(payload, separators=(",", ":"), default=str))


def error_result(exc: AnimusError) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=f"error: {exc.one_line()}")],
                                structured_content={"error": exc.to_dict()}, is_error=True)


async def call_tool(tools: dict[str, Tool], link: DaemonLink, run: RunEnv, name: str,
                    arguments: dict[str, Any] | None) -> types.CallToolResult:
    """One ``tools/call``: the result, or the error as a tool error (never an exception)."""
    try:
        tool = tools.get(name)
        if tool is None:
            raise InvalidInput(f"unknown tool {name!r}", fix=f"one of: {', '.join(sorted(tools))}")
        args = check_arguments(name, tool.input_schema, arguments)
        result = await tool.handler(Call(name, args, link, run))
    except AnimusError as exc:
        return error_result(exc)
    except Exception as exc:  # a bug: reported like the CLI reports one, the server keeps serving
        return error_result(Internal(f"{type(exc).__name__}: {exc}", fix="report this with the output of animus doctor"))
    text = _text(result)
    return types.CallToolResult(content=[text], structured_content=json.loads(text.text))  # JSON-safe copy


def build_server(link: DaemonLink, run: RunEnv) -> Server[Any]:
    tools = {tool.name: tool for tool in TOOLS}
    listed = [types.Tool(name=t.name, description=t.description, input_schema=t.input_schema) for t in TOOLS]

    async def on_list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                            ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def on_call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                           ) -> types.CallToolResult:
        return await call_tool(tools, link, run, params.name, params.arguments)

    return Server("animus", version=__version__, instructions=INSTRUCTIONS,
                  get_tool_input_schema=lambda name: tools[name].input_schema if name in tools else None,
                  on_list_tools=on_list_tools, on_call_tool=on_call_tool)


async def serve_stdio(server: Server[Any]) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(server: Server[Any], sock: socket.socket, token: str, token_file: str) -> None:
    import uvicorn

    from animus.plugins.transports.auth import TokenAuth

    app = TokenAuth(server.streamable_http_app(streamable_http_path=MCP_PATH, host="127.0.0.1"), token)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", loop="asyncio",
                            timeout_graceful_shutdown=1, server_header=False)
    port = sock.getsockname()[1]
    sys.stderr.write(f"animus mcp: serving http://127.0.0.1:{port}{MCP_PATH} "
                     f"(send Authorization: Bearer <the token in {token_file}>)\n")
    sys.stderr.flush()
    await uvicorn.Server(config).serve(sockets=[sock])
