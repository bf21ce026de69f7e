"""What a command phase runs with: a declared environment, never the daemon's.

A command phase runs whatever the workflow YAML says, with the output going
to the bus, ``workflow.db`` and the phase log. Handing it the daemon's whole
environment would hand every provider key and token to every ``make`` and
``npm test`` (and to its output). So a command gets:

1. the safe base: ``PATH HOME USER LOGNAME SHELL TERM TMPDIR LANG LC_ALL TZ``
   and any other ``LC_*``, from the runner's environment;
2. the names the operator passes to every command, ``commands: {env: [...]}``
   in ``.animus/config.yaml``;
3. the phase's own ``command.env`` (``env: {GH_TOKEN: "${GH_TOKEN}"}`` passes
   one secret to one phase, and nothing else sees it);
4. ``ANIMUS_WORKFLOW_ID``, ``ANIMUS_PHASE``, ``ANIMUS_ATTEMPT``,
   ``ANIMUS_TASK_ROOT`` and, on a Ray node, ``ANIMUS_BRANCH`` and
   ``ANIMUS_REPOSITORY``.

Secret references in the compiled config (``animus.redact``) are resolved
here, from the runner's environment, in the program, the args and
``command.env``: only at the moment the process starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from animus.redact import unmask

__all__ = ["SAFE_BASE", "command_env", "resolve_argv", "UnresolvedSecret"]

SAFE_BASE = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "LANG", "LC_ALL", "TZ")
_NODE_VARS = ("ANIMUS_BRANCH", "ANIMUS_REPOSITORY")


class UnresolvedSecret(LookupError):
    """A command refers to a secret variable the runner does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return (f"the command refers to ${{{self.name}}}, which is not set where the runner runs "
                f"(export it before the daemon starts, or on the Ray node)")


def _resolve(text: str, source: Mapping[str, str]) -> str:
    try:
        return unmask(text, source)
    except KeyError as exc:
        raise UnresolvedSecret(str(exc.args[0])) from None


def command_env(source: Mapping[str, str], phase_env: Mapping[str, str], passthrough: Iterable[str],
                animus: Mapping[str, str]) -> dict[str, str]:
    """The environment of one command phase (see the module doc)."""
    names = {*SAFE_BASE, *passthrough, *(k for k in source if k.startswith("LC_"))}  # keys only: no value decoded
    env = {k: v for k in names if (v := source.get(k)) is not None}
    env |= {k: source[k] for k in _NODE_VARS if k in source}
    env |= {str(k): _resolve(str(v), source) for k, v in phase_env.items()}
    return env | dict(animus)


def resolve_argv(program: str, args: Iterable[str], source: Mapping[str, str]) -> list[str]:
    return [_resolve(program, source), *(_resolve(a, source) for a in args)]
