"""``linear`` subject plugin: kinds ``linear.*``, serving ``linear.issue``.

Environment (declared in the manifest, so it crosses the env filter):
``LINEAR_API_KEY`` (required; a personal API key), ``LINEAR_TEAM_ID``
(the team new issues go to, and the only team listed) and ``LINEAR_API_URL``
(another GraphQL endpoint, e.g. a test server). Configuration
(``<project>/.animus/config.yaml``) wins over the environment::

    plugins:
      linear:
        config:
          team_id: <team UUID>
          base_url: https://api.linear.app/graphql
          timeout: 5          # seconds per HTTP request

Why ``linear.*``: the reference declares the glob so other Linear entities
can arrive without a manifest change; today only ``linear.issue`` exists,
and another kind under the glob answers method-not-found. A missing API key does
not stop the plugin from starting: ``health/check`` reports it unhealthy
with the reason and every call answers "Subject backend unavailable".

Rate-limit retries wait at most ``max_retry_wait`` (5 s) so that a call
ends well inside the daemon's 15 s subject-call timeout.
"""

from __future__ import annotations

import os
from typing import Any

from animus.plugin_runtime.sdk import run_plugin
from animus.plugins.subjects.backend import SubjectBackend
from animus.plugins.subjects.linear_client import LinearClient
from animus.plugins.subjects.linear_graphql import KIND
from animus.plugins.subjects.plugin import SubjectPlugin


class LinearSubjects(SubjectPlugin):
    name = "linear"
    version = "0.5.0"
    description = "Linear issues through Linear's GraphQL API (kinds linear.*)"
    subject_kinds = ["linear.*"]
    known_kinds = [KIND]
    env_required = [
        {"name": "LINEAR_API_KEY", "description": "Linear personal API key", "required": True,
         "sensitive": True},
        {"name": "LINEAR_TEAM_ID", "description": "team for new issues", "required": False,
         "sensitive": False},
        {"name": "LINEAR_API_URL", "description": "GraphQL endpoint override", "required": False,
         "sensitive": False},
    ]

    @classmethod
    def serves(cls, kind: str) -> bool:
        return kind == KIND  # the glob routes linear.* here; only issues exist so far

    def make_backend(self, kind: str) -> SubjectBackend:
        options: dict[str, Any] = {"max_retries": 2, "max_retry_wait": 5.0, "timeout": float(self.config.get("timeout") or 5)}
        if self.config.get("team_id"):
            options["team_id"] = str(self.config["team_id"])
        if self.config.get("base_url"):
            options["base_url"] = str(self.config["base_url"])
        return LinearClient.from_env(os.environ, **options)


if __name__ == "__main__":
    run_plugin(LinearSubjects)
