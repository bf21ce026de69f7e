"""``default`` subject plugin: kind ``task`` in ``~/.animus/<scope>/workflow.db``."""

from __future__ import annotations

from pathlib import Path

from animus.plugin_runtime.sdk import run_plugin
from animus.plugins.subjects.backend import SubjectBackend
from animus.plugins.subjects.plugin import SubjectPlugin
from animus.plugins.subjects.store import SubjectStore


class DefaultSubjects(SubjectPlugin):
    name = "default"
    version = "0.5.0"
    description = "Tasks kept in the scoped workflow.db (kind task)"
    subject_kinds = ["task"]

    def make_backend(self, kind: str) -> SubjectBackend:
        return SubjectStore(Path(self.state_root) / "workflow.db", "task", "TASK")


if __name__ == "__main__":
    run_plugin(DefaultSubjects)
