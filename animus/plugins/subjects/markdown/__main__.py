"""``markdown`` subject plugin: kind ``md.task``, one Markdown file per task.

Files are ``<directory>/TASK-001.md`` with YAML front matter; configuration
(``<project>/.animus/config.yaml``)::

    plugins:
      markdown:
        config:
          directory: .animus/tasks   # optional; relative to the project root

The kind is ``md.task``, not ``task``: ``task`` belongs to the ``default``
backend and two plugins may not declare one kind.

People edit these files too (see ``subjects.markdown_store``): every read
goes to disk, a write changes only the keys that changed, and a write
refuses with a conflict when the file changed since it was read. ``get``
returns the file's ``version`` (its content hash); pass it back as
``expected_version`` to make an update refuse if someone saved in between.

Writes are write-then-rename, so a plugin killed mid-write leaves the old
file or the new one, plus at most a hidden temporary file; the next start
removes temporaries whose writer is dead (``sweep_stale_temporaries``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from animus.plugin_runtime.sdk import run_plugin
from animus.plugins.subjects.backend import SubjectBackend
from animus.plugins.subjects.markdown_store import DEFAULT_DIRECTORY, MarkdownStore
from animus.plugins.subjects.plugin import SubjectPlugin
from animus.state.pids import pid_alive

KIND = "md.task"
# The temporary name ``atomic_file.write_atomic`` uses: .<name>.<pid>.<8 hex>.tmp
_TEMPORARY = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp")


def sweep_stale_temporaries(directory: Path) -> list[Path]:
    """Remove temporaries left by writers that died mid-write; return what was removed."""
    removed: list[Path] = []
    if not directory.is_dir():
        return removed
    for entry in os.scandir(directory):
        match = _TEMPORARY.fullmatch(entry.name)
        if match and not pid_alive(int(match.group(1))):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


class MarkdownSubjects(SubjectPlugin):
    name = "markdown"
    version = "0.5.0"
    description = "Tasks as Markdown files in the repository (kind md.task)"
    subject_kinds = [KIND]

    def directory(self) -> Path:
        path = Path(str(self.config.get("directory") or DEFAULT_DIRECTORY)).expanduser()
        return path if path.is_absolute() else Path(self.project_root) / path

    def on_initialize(self, params: dict[str, Any]) -> None:
        for path in sweep_stale_temporaries(self.directory()):
            self.publish("plugin", "subject_stale_temporary_removed", "warn", data={"path": str(path)})

    def make_backend(self, kind: str) -> SubjectBackend:
        return MarkdownStore(self.directory(), KIND, "TASK")


if __name__ == "__main__":
    run_plugin(MarkdownSubjects)
