"""Keeping secret values out of logs, events, phase output and compiled config.

Which variables are secret:

- every ``env_required`` entry an installed plugin's manifest marks
  ``sensitive: true`` (the root lists their names in ``ANIMUS_SENSITIVE_ENV``
  for every process it starts);
- any variable whose name says so: a ``KEY``, ``TOKEN``, ``SECRET``,
  ``PASSWORD``/``PASSWD``, ``CREDENTIAL(S)`` or ``PAT`` part
  (``LINEAR_API_KEY``, ``GH_TOKEN``, ``AWS_SECRET_ACCESS_KEY``);
- names the operator adds in ``ANIMUS_LOG_REDACT_KEYS`` (comma-separated).

A process's :class:`Redactor` masks the *values* those variables have in its
own environment (values shorter than 6 characters are left alone: ``1`` or
``true`` are no secrets, and masking them would garble every line). One
function serves every output: :func:`processor` for structlog (the daemon's
log), :meth:`Redactor.value` for bus events (the publisher calls it) and
:meth:`Redactor.text` for command output (the phase log file, the output
tail in ``workflow.db``). A masked value reads ``[REDACTED:NAME]``.

``${VAR}`` interpolation in workflow YAML sees :func:`mask_env`'s view of the
environment: a secret variable expands to a reference, ``⟦secret:NAME⟧``,
so the compiled config (on disk, and shipped to Ray nodes) holds no value.
:func:`unmask` resolves references where a secret is used: a command
phase's program, args and env, a webhook trigger's secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

__all__ = ["Redactor", "active", "processor", "sensitive_names", "mask_env", "unmask", "references",
           "ENV_SENSITIVE", "MIN_SECRET_CHARS"]

ENV_SENSITIVE = "ANIMUS_SENSITIVE_ENV"
ENV_EXTRA = "ANIMUS_LOG_REDACT_KEYS"
MIN_SECRET_CHARS = 6
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|PAT)(?:_|$)")
_REF = re.compile(r"⟦secret:([A-Za-z_][A-Za-z0-9_]*)⟧")


def sensitive_names(env: Mapping[str, str], declared: Iterable[str] = ()) -> set[str]:
    """The names of ``env`` whose values are secret (see the module doc)."""
    listed = {n.strip() for n in f"{env.get(ENV_SENSITIVE, '')},{env.get(ENV_EXTRA, '')}".split(",") if n.strip()}
    names = listed | set(declared)
    return {name for name in env if name in names or _SECRET_NAME.search(name.upper())}


class Redactor:
    """Masks a fixed set of secret values wherever they occur in text."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        by_value = {v: k for k, v in sorted(secrets.items()) if len(v) >= MIN_SECRET_CHARS}
        self._names = by_value
        # longest first, so a secret that contains another is masked whole
        ordered = sorted(by_value, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, declared: Iterable[str] = ()) -> Redactor:
        env = os.environ if env is None else env
        return cls({name: env[name] for name in sensitive_names(env, declared)})

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: f"[REDACTED:{self._names[m.group(0)]}]", text)

    def value(self, obj: Any) -> Any:
        """``obj`` with every string in it (keys too) masked; other values as they are."""
        if self._pattern is None:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.value(k): self.value(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        if isinstance(obj, bytes):
            return self.text(obj.decode("utf-8", "replace")).encode() if self._hit(obj) else obj
        return obj

    def _hit(self, data: bytes) -> bool:
        return any(value.encode() in data for value in self._names)


_ACTIVE: tuple[int, Redactor] | None = None


def active() -> Redactor:
    """This process's redactor, built from its environment on first use (again after a
    fork: a zygote's worker gets its own environment)."""
    global _ACTIVE
    if _ACTIVE is None or _ACTIVE[0] != os.getpid():
        _ACTIVE = (os.getpid(), Redactor.from_env())
    return _ACTIVE[1]


def processor(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """structlog processor: mask secret values in every field of a log record."""
    redactor = active()
    return {k: redactor.value(v) for k, v in event_dict.items()} if redactor else event_dict


def mask_env(env: Mapping[str, str], declared: Iterable[str] = ()) -> dict[str, str]:
    """``env`` with each secret variable's value replaced by its reference (for interpolation)."""
    secret = sensitive_names(env, declared)
    return {k: (f"⟦secret:{k}⟧" if k in secret and v else v) for k, v in env.items()}


def references(text: str) -> set[str]:
    """The secret variables ``text`` refers to."""
    return set(_REF.findall(text))


def unmask(text: str, env: Mapping[str, str]) -> str:
    """Resolve references from ``env``; an unresolvable one raises KeyError(name)."""
    def one(m: re.Match[str]) -> str:
        value = env.get(m.group(1))
        if value is None:
            raise KeyError(m.group(1))
        return value

    return _REF.sub(one, text)
