"""The keys each section of workflow YAML accepts.

``*_IGNORED`` are keys the original Animus defines that this one does not
model (yet): they are accepted so existing files load. Any other unknown key
is an error with a hint.
"""

from __future__ import annotations

from animus.workflow.model import TriggerType

__all__ = [
    "TOP",
    "TOP_IGNORED",
    "AGENT",
    "AGENT_IGNORED",
    "PHASE",
    "PHASE_IGNORED",
    "COMMAND",
    "COMMAND_IGNORED",
    "CONTRACT",
    "WORKFLOW",
    "WORKFLOW_IGNORED",
    "ENTRY",
    "TARGET_IGNORED",
    "SCHEDULE",
    "TRIGGER",
    "TRIGGER_TYPES",
]

TOP = {"agents", "phases", "workflows", "pipelines", "schedules", "triggers", "default_workflow_ref",
       "daemon", "mcp_servers"}
TOP_IGNORED = {"agent_channels", "models", "phase_catalog", "variables",
               "tools_allowlist", "tools", "phase_mcp_bindings", "integrations",
               "secrets", "worktree"}
AGENT = {"tool", "provider", "model", "system_prompt", "system_prompt_file", "fallback_provider", "permissions",
         "mcp_servers"}
AGENT_IGNORED = {"name", "description", "role", "persona", "memory", "communication", "models",
                 "tool_profile", "mcp_server_configs", "skills", "capabilities",
                 "structured_capabilities", "tool_policy", "project_overrides",
                 "reasoning_effort", "approval_policy"}
PHASE = {"mode", "agent", "agent_id", "directive", "system_prompt", "command", "manual",
         "decision_contract", "idempotency", "timeout_secs", "retry", "worktree"}
PHASE_IGNORED = {"skills", "runtime", "capabilities", "output_contract", "output_json_schema",
                 "default_tool"}
COMMAND = {"program", "args", "env", "cwd_mode", "cwd_path", "timeout_secs", "success_exit_codes"}
COMMAND_IGNORED = {"parse_json_output", "expected_result_kind", "expected_schema", "category",
                   "failure_pattern", "excerpt_max_chars", "on_success_verdict",
                   "on_failure_verdict", "confidence", "failure_risk"}
CONTRACT = {"min_confidence", "max_risk", "allow_missing_decision", "required_evidence"}
WORKFLOW = {"id", "name", "description", "phases", "budget", "worktree", "post_success"}
WORKFLOW_IGNORED = {"variables"}
ENTRY = {"max_rework_attempts", "skip_if", "on_verdict"}
TARGET_IGNORED = {"guard", "allow_agent_target", "allowed_targets"}
SCHEDULE = {"id", "cron", "workflow_ref", "enabled", "input"}
TRIGGER = {"id", "type", "workflow_ref", "enabled", "config", "input"}
TRIGGER_TYPES = {"cron": TriggerType.CRON, "file_watcher": TriggerType.FILE_WATCHER,
                 "webhook": TriggerType.WEBHOOK, "github_webhook": TriggerType.WEBHOOK}
