"""``animus mcp serve``: the daemon's own API as Model Context Protocol tools.

An agent CLI (Claude Code, Codex, Gemini CLI, opencode) or any MCP client
starts ``animus mcp serve`` and gets tools to read and change the board
(subjects of any kind the routing serves, comments on a task), to list and
inspect workflows with their phases and usage, to run a workflow on a task,
and to read a run's recent events. The server is a client of the daemon like
the CLI: every tool is one or two control calls on the control socket
(``subject/call``, ``workflow/*``, ``daemon/logs``, ``daemon/status``); it
never opens ``workflow.db`` and holds no state of its own, so two of them
side by side are harmless.

- ``tools``: the tool table (name, JSON schema, handler) and what each does;
- ``subject_tools`` / ``workflow_tools``: the handlers, one control call each;
- ``arguments``: the small JSON-schema subset the tools use, checked before a call;
- ``comments``: how a comment is kept on a subject (through the backends' update);
- ``run_env``: "my task" — the run's ids an agent's environment carries;
- ``link``: the control socket, and the one "daemon not running" error;
- ``server``: the MCP SDK's server over stdio, or streamable HTTP on 127.0.0.1;
- ``listen``: the ``--http`` socket, bound before the SDK loads.

Nothing here is imported by the CLI until ``animus mcp serve`` runs: the
SDK (pydantic, starlette) costs about a second to import.
"""

__all__: list[str] = []
