"""The workflow config used when a project has no ``.animus/workflows*.yaml``.

It is YAML text, parsed by the same loader as a project's files, so it can
never drift from what the loader accepts. The default workflow ``standard``
runs three ``command`` phases through ``sh``, needing no provider plugin and
no network, so ``animus daemon start`` and a first task run work on a fresh
machine. ``agent-delivery`` shows the agent form (implement, then review with
a rework loop); it needs the ``claude`` provider plugin.

The loader never falls back to this config when project files exist but fail
to load (the original's silent fallback hid broken configs, reference §G.2
PR #404); it reports ``<embedded defaults>`` as the config's source instead.
"""

from __future__ import annotations

__all__ = ["DEFAULTS_YAML", "EMBEDDED_SOURCE"]

EMBEDDED_SOURCE = "<embedded defaults>"

DEFAULTS_YAML = """\
default_workflow_ref: standard

agents:
  implementer:
    tool: claude
    model: claude-sonnet-4-6
    system_prompt: You implement tasks with small, focused, tested changes.
  reviewer:
    tool: claude
    model: claude-opus-4-6
    system_prompt: You review changes and never edit files yourself.

phases:
  plan:
    mode: command
    idempotency: idempotent
    command:
      program: sh
      args: [-c, "echo 'plan: animus demo phase 1 of 3 (no provider needed)'"]
      timeout_secs: 60
  build:
    mode: command
    idempotency: idempotent
    command:
      program: sh
      args: [-c, "echo 'build: animus demo phase 2 of 3'"]
      timeout_secs: 60
  check:
    mode: command
    idempotency: idempotent
    command:
      program: sh
      args: [-c, "echo 'check: animus demo phase 3 of 3'"]
      timeout_secs: 60
  implement:
    mode: agent
    agent: implementer
    idempotency: sideeffecting
    directive: Implement the task. Keep the change focused and explain what you changed.
    decision_contract: { min_confidence: 0.6, max_risk: medium, allow_missing_decision: true }
  review:
    mode: agent
    agent: reviewer
    idempotency: idempotent
    directive: >-
      Review the implementation. Return advance when it is ready, or rework
      with the blocking issues as your reason.

workflows:
  - id: standard
    name: Standard (demo)
    description: Three command phases that run anywhere; replace them with your own.
    phases: [plan, build, check]
  - id: agent-delivery
    name: Agent delivery
    description: An agent implements the task and another reviews it, with up to 3 reworks.
    phases:
      - implement
      - review:
          max_rework_attempts: 3
          on_verdict: { rework: { target: implement } }
"""
