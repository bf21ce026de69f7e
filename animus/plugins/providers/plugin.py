"""Provider plugins: the vendor engines wired to the plugin host.

One class serves every agent CLI (``CliProviderPlugin``, parametrised by a
vendor module: claude, codex, gemini, opencode) and one serves
OpenAI-compatible servers (``OaiProviderPlugin``). Both answer the same
methods, so the workflow runner never knows which vendor it talks to:

* ``agent/run`` / ``agent/resume`` run one agent turn and return the phase
  decision ``{verdict, reason, confidence, risk, evidence, summary,
  session_id, usage, rate_limited, error}``. Nothing the agent or its CLI does
  raises out of them: a crash, a timeout, a cancel or an unusable verdict
  block is ``verdict: "fail"`` with ``error`` saying why; a quota limit is
  ``verdict: null`` with ``rate_limited`` so the runner parks the phase
  (the contract itself, pure, is ``run_contract``).
* ``agent/cancel {run_key}`` stops that run's process group (SIGTERM, 2 s,
  SIGKILL, as ``run_cli`` does) and answers once it is stopped.

While a run goes, its events go on the bus (category ``agent``), tagged with
the caller's workflow_id / run_id / phase: ``agent_run_started`` first (the
daemon counts ``agent_runs_total`` from it), then ``agent_text``,
``agent_tool_call``, ``agent_tool_result``, ``agent_permission_denied`` (a tool use the
agent's permissions refused: tool, input summary, the CLI's message), ``agent_usage``,
``agent_rate_limited``, and ``agent_run_finished`` last.

Process ownership: ``run_cli`` runs in the handler thread that owns the run
(the CLI's parent-death signal is tied to that thread). If the plugin itself
is SIGKILLed, the kernel kills each CLI, but tools the CLI started would be
orphaned; every CLI therefore carries an owner token in its environment, and
the next instance of the plugin kills what a dead instance left behind
(``cli_process.reap_orphans``) before it says it is initialized.

SIGTERM (an operator stop, a daemon stop): the SDK cancels every run in
progress; each CLI group gets SIGTERM, 2 s, SIGKILL; each pending call is
answered ``verdict: "fail", error: "cancelled"``, and the process exits in
about 2.5 s at most, within the host's 5 s shutdown timeout.

The modules: ``base`` (``ProviderPlugin``), ``cli_plugin`` (``CliProviderPlugin``), ``http_plugin``
(``OaiProviderPlugin``); this one names them for the vendor plugins.
"""

from __future__ import annotations

from animus.plugins.providers.base import ProviderPlugin, env_dicts
from animus.plugins.providers.cli_plugin import CliProviderPlugin, CliSettings, CliVendor
from animus.plugins.providers.http_plugin import OaiProviderPlugin, OaiSettings

__all__ = [
    "CliProviderPlugin",
    "CliSettings",
    "CliVendor",
    "OaiProviderPlugin",
    "OaiSettings",
    "ProviderPlugin",
    "env_dicts",
]
