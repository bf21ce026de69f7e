"""Loading a project's workflow config: discover, parse, merge, cross-check.

A project's config is ``.animus/workflows.yaml`` followed by
``.animus/workflows/*.yaml`` in name order; later files override agents,
phases, workflows, schedules and triggers by id. With no files at all the
embedded defaults are used (``animus.workflow.defaults``); when files exist
but are broken, loading fails: it never falls back silently (reference §G.2,
#404). Loading is all-or-nothing: every file is read, interpolated, parsed
and checked, then the merged result is cross-checked, before anything is
returned, so a bad overlay can never half-apply or reach ``state/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from animus.errors import InvalidInput
from animus.workflow.config.crosscheck import combine
from animus.workflow.config.interpolate import interpolate
from animus.workflow.config.nodes import one_line
from animus.workflow.config.sections import Layer, SectionParser
from animus.workflow.defaults import DEFAULTS_YAML, EMBEDDED_SOURCE
from animus.workflow.model import WorkflowConfig

__all__ = ["load_workflow_config", "load_workflow_texts", "workflow_files"]

# libyaml when present (the daemon compiles at every start); a file it refuses is parsed again by the
# pure-Python loader, whose messages the errors below are written for
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str, src: str, env: Mapping[str, str], root: Path | None) -> Layer:
    expanded = interpolate(text, env, src)
    try:
        try:
            node = yaml.compose(expanded, Loader=_LOADER)
        except yaml.YAMLError:
            node = yaml.compose(expanded, Loader=yaml.SafeLoader)
        return SectionParser(src, root).file(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed document"
        if problem.startswith("but ") and exc.context:  # "expected a single document ... but found"
            problem = f"{exc.context} {problem}"
        line = mark.line + 1 if mark else 1
        raise InvalidInput(one_line(f"{src}:{line}: invalid YAML: {problem}"),
                           fix="check the indentation and quoting on that line") from None
    except yaml.YAMLError as exc:  # ReaderError: a character YAML does not allow
        pos = getattr(exc, "position", 0)
        line = expanded.count("\n", 0, pos) + 1
        raise InvalidInput(one_line(f"{src}:{line}: invalid YAML: {getattr(exc, 'reason', exc)}"),
                           fix="remove control characters; the file must be UTF-8 text") from None
    except RecursionError:
        raise InvalidInput(f"{src}:1: invalid YAML: nested too deeply") from None


def workflow_files(project_root: Path) -> list[Path]:
    """``.animus/workflows.yaml``, then ``.animus/workflows/*.yaml`` by name."""
    base = project_root / ".animus"
    files = [base / "workflows.yaml"] if (base / "workflows.yaml").is_file() else []
    if (base / "workflows").is_dir():
        files += sorted(p for p in (base / "workflows").glob("*.yaml") if p.is_file())
    return files


def load_workflow_texts(texts: Sequence[tuple[str, str]], env: Mapping[str, str],
                        project_root: Path | None = None) -> WorkflowConfig:
    """Load ``(source name, YAML text)`` pairs as one config, in order."""
    layers = [_parse(text, src, env, project_root) for src, text in texts]
    return combine(layers, tuple(src for src, _ in texts), project_root)


def load_workflow_config(project_root: Path, env: Mapping[str, str]) -> WorkflowConfig:
    """The project's workflow config, or the embedded defaults when it has no files."""
    files = workflow_files(project_root)
    if not files:
        return load_workflow_texts([(EMBEDDED_SOURCE, DEFAULTS_YAML)], {})
    texts = []
    for path in files:
        src = path.relative_to(project_root).as_posix()
        try:
            texts.append((src, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(one_line(f"{src}:1: cannot read: {exc}"),
                               fix="check the file's permissions; it must be UTF-8 text") from None
    return load_workflow_texts(texts, env, project_root)
