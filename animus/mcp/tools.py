"""The tool table ``tools/list`` shows, in the order a model reads it.

Names are ``<group>_<verb>`` so that an agent profile's ``tools`` prefixes
and a CLI's permission rules can name a group (``subject_``) or one tool
(``subject_status``); an agent CLI shows them as e.g.
``mcp__animus__subject_status`` (Claude Code) or ``animus_subject_status``
(opencode).
"""

from __future__ import annotations

from animus.mcp.calls import Tool
from animus.mcp.subject_tools import SUBJECT_TOOLS
from animus.mcp.workflow_tools import WORKFLOW_TOOLS

__all__ = ["TOOLS", "TOOL_NAMES"]

TOOLS: tuple[Tool, ...] = (*SUBJECT_TOOLS, *WORKFLOW_TOOLS)
TOOL_NAMES = tuple(tool.name for tool in TOOLS)
