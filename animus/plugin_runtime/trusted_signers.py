"""Who may sign a plugin: the publisher identities in ``trusted-signers.yaml``.

Plugin signatures are keyless (Sigstore Fulcio + Rekor), so a valid signature
only proves *some* GitHub workflow signed the artifact. Trust comes from
naming which workflow: per publisher (the GitHub owner), a regex that must
fully match the certificate's identity (its SAN) and the OIDC issuer that
vouched for it.

The first-party publisher ``launchapp-dev`` is built in. Operators add their
own publishers in ``$ANIMUS_HOME/trusted-signers.yaml``; file entries are
merged with the built-in ones, never replace them::

    trusted_signers:
      - publisher: acme
        identity: ^https://github\\.com/acme/[^/]+/\\.github/workflows/release\\.yml@refs/tags/v.*
        issuer: https://token.actions.githubusercontent.com

Under the ``warn`` policy a publisher without an entry is still trusted for
its own repository's release workflow, ``https://github.com/<owner>/<repo>/
.github/workflows/release.yml@refs/tags/v*``, as long as the repository is
known; under ``strict`` only this file (and the built-in entry) decides.

This module is pure: the caller passes the file path (``ANIMUS_HOME``
decides it), nothing is read at import time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from animus.errors import InvalidInput

__all__ = [
    "BUILTIN_SIGNERS",
    "FIRST_PARTY_PUBLISHER",
    "GITHUB_ACTIONS_ISSUER",
    "TrustedSigner",
    "TrustedSigners",
    "default_identity",
    "load_trusted_signers",
]

GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"
FIRST_PARTY_PUBLISHER = "launchapp-dev"

_ENTRY_KEYS = ("publisher", "identity", "issuer")


@dataclass(frozen=True)
class TrustedSigner:
    """One trusted identity: ``identity`` is a regex fully matched against the SAN."""

    publisher: str
    identity: str
    issuer: str

    def __post_init__(self) -> None:
        if not self.publisher or "/" in self.publisher or self.publisher != self.publisher.strip():
            raise ValueError(f"publisher {self.publisher!r} is not a GitHub owner name")
        if not self.issuer.startswith("https://"):
            raise ValueError(f"issuer {self.issuer!r} is not an https:// URL")
        try:
            re.compile(self.identity)
        except re.error as exc:
            raise ValueError(f"identity {self.identity!r} is not a valid regex: {exc}") from None


BUILTIN_SIGNERS: tuple[TrustedSigner, ...] = (
    TrustedSigner(
        publisher=FIRST_PARTY_PUBLISHER,
        identity=(
            r"^https://github\.com/launchapp-dev/[^/]+/\.github/workflows/release\.yml"
            r"@refs/tags/v.*"
        ),
        issuer=GITHUB_ACTIONS_ISSUER,
    ),
)


def default_identity(owner: str, repo: str) -> str:
    """The identity regex for a repository's own tagged release workflow."""
    return (
        rf"https://github\.com/{re.escape(owner)}/{re.escape(repo)}"
        r"/\.github/workflows/release\.yml@refs/tags/v.*"
    )


@dataclass(frozen=True)
class TrustedSigners:
    """The merged allowlist: built-in signers first, then the operator's."""

    signers: tuple[TrustedSigner, ...] = BUILTIN_SIGNERS

    def for_publisher(self, publisher: str | None, own_repository: bool = True) -> tuple[TrustedSigner, ...]:
        """Signers trusted for ``owner`` or ``owner/repo``; every signer when unknown.

        An unknown publisher (a local ``--path`` install) may be signed by any
        trusted identity. A publisher without an entry falls back to its own
        repository's release workflow when the repository is known, unless
        ``own_repository`` is off (the strict policy: only the file decides).
        """
        if publisher is None:
            return self.signers
        owner, _, repo = publisher.partition("/")
        matched = tuple(s for s in self.signers if s.publisher.lower() == owner.lower())
        if matched or not repo or not own_repository:
            return matched
        return (TrustedSigner(owner, default_identity(owner, repo), GITHUB_ACTIONS_ISSUER),)


def load_trusted_signers(path: Path) -> TrustedSigners:
    """Built-in signers merged with ``path``; a missing or empty file adds none.

    Raises ``InvalidInput`` with a one-line message naming the file and the
    offending entry when the file is malformed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TrustedSigners()
    except (OSError, UnicodeDecodeError) as exc:
        raise _malformed(path, f"cannot read the file: {exc}") from None
    entries = _entries(path, _parse_yaml(path, text))
    return TrustedSigners(tuple(dict.fromkeys(BUILTIN_SIGNERS + tuple(entries))))


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise _malformed(path, f"not valid YAML{where}: {problem}") from None


def _entries(path: Path, document: Any) -> list[TrustedSigner]:
    if document is None:
        return []
    if not isinstance(document, dict):
        raise _malformed(path, "expected a mapping with a 'trusted_signers' list")
    unknown = sorted(str(key) for key in document if key != "trusted_signers")
    if unknown:
        raise _malformed(path, f"unknown top-level key(s): {', '.join(unknown)}")
    raw = document.get("trusted_signers")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _malformed(path, "'trusted_signers' must be a list")
    return [_entry(path, index, item) for index, item in enumerate(raw)]


def _entry(path: Path, index: int, item: Any) -> TrustedSigner:
    where = f"trusted_signers[{index}]"
    if not isinstance(item, dict):
        raise _malformed(path, f"{where} must be a mapping of {', '.join(_ENTRY_KEYS)}")
    unknown = sorted(str(key) for key in item if key not in _ENTRY_KEYS)
    if unknown:
        raise _malformed(path, f"{where} has unknown key(s): {', '.join(unknown)}")
    for key in _ENTRY_KEYS:
        if not isinstance(item.get(key), str) or not item[key]:
            raise _malformed(path, f"{where}.{key} is missing or not a string")
    try:
        return TrustedSigner(item["publisher"], item["identity"], item["issuer"])
    except ValueError as exc:
        raise _malformed(path, f"{where}: {exc}") from None


def _malformed(path: Path, problem: str) -> InvalidInput:
    return InvalidInput(
        f"{path}: {problem}",
        fix=f"edit {path} (format: trusted_signers: [{{publisher, identity, issuer}}])",
    )
