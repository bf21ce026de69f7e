"""``sqlite`` subject plugin: kinds ``sqlite.*`` in an SQLite file the operator chose.

Configuration (``<project>/.animus/config.yaml``)::

    plugins:
      sqlite:
        config:
          path: .animus/subjects.db   # required; relative to the project root
          id_prefix: TASK             # optional; default from the kind (sqlite.bug -> BUG)

Why a glob: routing is decided from the installed manifest, before any
config is read, so a kind chosen in config could never be routed. Declaring
``sqlite.*`` lets the operator use any number of kinds (``sqlite.task``,
``sqlite.bug``…) in the one file without touching the manifest; each kind has
its own ids. ``sqlite.task`` is the one ``health/check`` probes.

The schema is created and migrated by the plugin on first open
(``subjects.sqlite_schema``: a version row, append-only migrations). The
file is in WAL mode, so readers never block the writer and vice versa, and
every write is one ``BEGIN IMMEDIATE`` transaction: a process killed
mid-write leaves the last committed state, never a half-written row.
"""

from __future__ import annotations

import re
from pathlib import Path

from animus.errors import InvalidInput
from animus.plugin_runtime.sdk import run_plugin
from animus.plugins.subjects.backend import SubjectBackend
from animus.plugins.subjects.plugin import SubjectPlugin
from animus.plugins.subjects.store import SubjectStore

DEFAULT_KIND = "sqlite.task"


def id_prefix_for(kind: str) -> str:
    """``sqlite.task`` -> ``TASK``; a name with no usable letters -> ``ITEM``."""
    prefix = re.sub(r"[^A-Z0-9]", "", kind.rsplit(".", 1)[-1].upper())
    return prefix if re.fullmatch(r"[A-Z][A-Z0-9]*", prefix) else "ITEM"


class SqliteSubjects(SubjectPlugin):
    name = "sqlite"
    version = "0.5.0"
    description = "Subjects in an operator-chosen SQLite file (kinds sqlite.*)"
    subject_kinds = ["sqlite.*"]
    known_kinds = [DEFAULT_KIND]

    def db_path(self) -> Path:
        raw = str(self.config.get("path") or "").strip()
        if not raw:
            raise InvalidInput(
                f"config key plugins.{self.name}.config.path is not set (the SQLite file to keep subjects in)",
                fix=f"set plugins.{self.name}.config.path in .animus/config.yaml, then restart the daemon",
            )
        path = Path(raw).expanduser()
        return path if path.is_absolute() else Path(self.project_root) / path

    def make_backend(self, kind: str) -> SubjectBackend:
        prefix = str(self.config.get("id_prefix") or id_prefix_for(kind))
        return SubjectStore(self.db_path(), kind, prefix)


if __name__ == "__main__":
    run_plugin(SqliteSubjects)
