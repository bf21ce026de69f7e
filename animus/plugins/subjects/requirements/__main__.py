"""``requirements`` subject plugin: kind ``requirement`` in ``~/.animus/<scope>/workflow.db``.

Stored like the ``default`` backend's tasks (same file, same tables, rows
told apart by kind), with ids ``REQ-001``… Requirements keep their native
lifecycle (``draft`` … ``po-review`` … ``implemented``) in
``custom.native_status``; ``status`` is the normalized one the scheduler uses.
No configuration.
"""

from __future__ import annotations

from pathlib import Path

from animus.plugin_runtime.sdk import run_plugin
from animus.plugins.subjects.backend import SubjectBackend
from animus.plugins.subjects.plugin import SubjectPlugin
from animus.plugins.subjects.store import SubjectStore


class RequirementSubjects(SubjectPlugin):
    name = "requirements"
    version = "0.5.0"
    description = "Requirements kept in the scoped workflow.db (kind requirement)"
    subject_kinds = ["requirement"]

    def make_backend(self, kind: str) -> SubjectBackend:
        return SubjectStore(Path(self.state_root) / "workflow.db", "requirement", "REQ")


if __name__ == "__main__":
    run_plugin(RequirementSubjects)
