"""The workflow config: YAML in, a validated ``WorkflowConfig`` and its compiled JSON out.

``interpolate`` (``${VAR}``), ``nodes`` (typed reads with file:line errors),
``keys`` (what each section accepts), ``sections`` (one file's agents, phases,
workflows, schedules, triggers; ``mcp_section`` for MCP servers), ``merge``
(discovery and files in order), ``crosscheck`` (merging layers, every
cross-reference), ``compiled`` (the JSON in ``state/``).

A workflow runner reads the compiled JSON only: ``merge``'s names (and with
them PyYAML and the parsers) are imported at their first use, so that a
runner, one fresh process per run, does not map them.
"""

from typing import TYPE_CHECKING, Any

from animus.workflow.config.compiled import (
    COMPILED_FILE,
    SCHEMA,
    compile_config,
    read_compiled,
    refresh_compiled,
    write_compiled,
)
from animus.workflow.config.interpolate import interpolate

if TYPE_CHECKING:
    from animus.workflow.config.merge import load_workflow_config, load_workflow_texts, workflow_files
else:
    def __getattr__(name: str) -> Any:
        if name in ("load_workflow_config", "load_workflow_texts", "workflow_files"):
            from animus.workflow.config import merge

            return getattr(merge, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
