"""The workflow config: YAML in, a validated ``WorkflowConfig`` and its compiled JSON out.

``interpolate`` (``${VAR}``), ``nodes`` (typed reads with file:line errors),
``keys`` (what each section accepts), ``sections`` (one file's agents, phases,
workflows, schedules, triggers; ``mcp_section`` for MCP servers), ``merge``
(discovery and files in order), ``crosscheck`` (merging layers, every
cross-reference), ``compiled`` (the JSON in ``state/``).
"""

from animus.workflow.config.compiled import (
    COMPILED_FILE,
    SCHEMA,
    compile_config,
    read_compiled,
    refresh_compiled,
    write_compiled,
)
from animus.workflow.config.interpolate import interpolate
from animus.workflow.config.merge import load_workflow_config, load_workflow_texts, workflow_files

__all__ = [
    "COMPILED_FILE",
    "SCHEMA",
    "compile_config",
    "interpolate",
    "load_workflow_config",
    "load_workflow_texts",
    "read_compiled",
    "refresh_compiled",
    "workflow_files",
    "write_compiled",
]
