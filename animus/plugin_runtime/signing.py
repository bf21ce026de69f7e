"""Plugin signature verification: keyless Sigstore, offline, per-publisher identity.

A plugin release ships ``<asset>.bundle`` (or ``.sigstore``) next to the
asset: a Sigstore bundle with a short-lived Fulcio certificate, the signature
and the Rekor log entry with its inclusion proof. So there is no key to
manage and nothing to fetch: ``Verifier.production(offline=True)`` uses the
trust root that ships with the ``sigstore`` package (seeded into its local
TUF cache, never refreshed here) and the proof travels in the bundle.

A valid signature only says *some* workflow signed. Trust is the
certificate's identity (its SAN, e.g. a GitHub release workflow) fully
matching the publisher's regex from ``trusted-signers.yaml`` plus the
expected OIDC issuer: what ``cosign verify-blob --certificate-identity-regexp
--certificate-oidc-issuer`` checks.

``verify_bundle`` is that check; ``check_artifact`` applies the operator's
signature policy (``disabled | warn | strict``) and decides whether an
install is refused. Neither touches the CLI or the install state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat import asn1
from cryptography.x509 import (
    Certificate,
    ExtensionNotFound,
    ObjectIdentifier,
    RFC822Name,
    SubjectAlternativeName,
    UniformResourceIdentifier,
    UnrecognizedExtension,
)

from animus.errors import InvalidInput
from animus.plugin_runtime.trusted_signers import TrustedSigners

if TYPE_CHECKING:
    from sigstore.models import Bundle

_Expected = tuple[re.Pattern[str], str]  # (identity regex, OIDC issuer)

__all__ = [
    "DEFAULT_POLICY",
    "TRUST_KEY_DEPRECATED",
    "SignatureCheck",
    "SignatureError",
    "SignaturePolicy",
    "SignatureStatus",
    "VerifiedSignature",
    "check_artifact",
    "verify_bundle",
]

TRUST_KEY_DEPRECATED = (
    "--trust-key is deprecated and does nothing: trust is keyless "
    "(Sigstore Fulcio + Rekor plus the publisher identity in trusted-signers.yaml)"
)

# Sigstore bundle v0.1-v0.3, whatever the file is called (.sigstore, .bundle, .sigstore.json).
_MEDIA_TYPES = frozenset(
    f"application/vnd.dev.sigstore.bundle{suffix}"
    for suffix in ("+json;version=0.1", "+json;version=0.2", "+json;version=0.3", ".v0.3+json")
)

# Fulcio's OIDC issuer extensions: v2 is a DER UTF8String, v1 (deprecated) raw bytes.
_OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")

# sigstore's VerificationError texts, turned into what an operator can act on.
_REASONS = (
    ("Bundle message digest mismatch",
     "artifact digest does not match the bundle (tampered artifact?)"),
    ("Signature is invalid for input",
     "signature does not match the artifact (tampered artifact or bundle?)"),
    ("transparency log entry is inconsistent",
     "transparency log entry does not match the bundle (tampered bundle?)"),
    ("invalid log entry",
     "transparency log inclusion proof is invalid (tampered bundle?): {detail}"),
    ("certificate chain",
     "signing certificate is not issued by Sigstore Fulcio: {detail}"),
    ("SCT",
     "signing certificate has no valid certificate-transparency proof: {detail}"),
)  # fmt: skip


class SignaturePolicy(StrEnum):
    DISABLED = "disabled"
    WARN = "warn"
    STRICT = "strict"


DEFAULT_POLICY = SignaturePolicy.WARN


class SignatureStatus(StrEnum):
    """What ``plugins.yaml`` records and ``plugin list`` shows in its SIG column."""

    VERIFIED = "verified"
    UNSIGNED = "unsigned"
    INVALID = "invalid"
    UNTRUSTED_SIGNER = "untrusted_signer"
    SKIPPED = "skipped"


class SignatureError(InvalidInput):
    """Verification failed; ``reason`` is one operator-readable line."""

    def __init__(self, reason: str, status: SignatureStatus = SignatureStatus.INVALID) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class VerifiedSignature:
    identity: str  # the certificate SAN that matched
    issuer: str  # the OIDC issuer recorded in the certificate
    log_index: int  # Rekor log index
    integrated_time: datetime | None  # Rekor v2 entries carry none


def verify_bundle(
    artifact: Path, bundle: Path, identity_regex: str, issuer: str
) -> VerifiedSignature:
    """Verify ``artifact`` against ``bundle`` offline for one publisher identity."""
    try:
        pattern = re.compile(identity_regex)
    except re.error as exc:
        raise InvalidInput(f"identity regex {identity_regex!r} is invalid: {exc}") from None
    return _verify(artifact, bundle, [(pattern, issuer)])


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of applying a signature policy to one artifact."""

    status: SignatureStatus
    reason: str
    verified: VerifiedSignature | None
    refused: bool
    policy: SignaturePolicy

    def error_block(self, plugin_name: str) -> str:
        """The operator runbook's error for a refused install."""
        return "\n".join(
            [
                "error: plugin signature verification failed",
                f"  plugin: {plugin_name}",
                f"  policy: {self.policy}",
                f"  reason: {self.reason}",
            ]
        )


def check_artifact(
    artifact: Path,
    bundle: Path | None,
    publisher: str | None,
    policy: SignaturePolicy,
    signers: TrustedSigners,
) -> SignatureCheck:
    """Apply ``policy``: disabled skips; warn refuses a bundle that does not verify
    and records a missing one or an untrusted signer; strict refuses anything
    but a verified signature from a signer in trusted-signers.yaml.

    ``publisher`` is ``owner`` or ``owner/repo`` of a release install, or
    ``None`` for a local artifact (then any trusted signer is accepted).
    Only under ``warn`` is an owner without an entry trusted for its own
    repository's release workflow.
    """
    if policy is SignaturePolicy.DISABLED:
        reason = "signature policy is disabled"
        return SignatureCheck(SignatureStatus.SKIPPED, reason, None, False, policy)
    strict = policy is SignaturePolicy.STRICT
    if bundle is None or not bundle.is_file():
        reason = "no signature bundle was published with the artifact"
        return SignatureCheck(SignatureStatus.UNSIGNED, reason, None, strict, policy)
    trusted = signers.for_publisher(publisher, own_repository=not strict)
    expected = [(re.compile(s.identity), s.issuer) for s in trusted]
    try:
        verified = _verify(artifact, bundle, expected)
    except SignatureError as exc:
        # a bundle that is there but does not verify is never a mere warning: tampered, wrong or junk
        refused = strict or exc.status is SignatureStatus.INVALID
        return SignatureCheck(exc.status, exc.reason, None, refused, policy)
    reason = f"signed by {verified.identity}"
    return SignatureCheck(SignatureStatus.VERIFIED, reason, verified, False, policy)


class _PublisherPolicy:
    """A sigstore ``VerificationPolicy`` that checks identity but defers the verdict.

    sigstore calls ``verify(cert)`` after the certificate-chain check but
    before the signature and transparency-log checks. Raising there would
    report a tampered artifact from a stranger as ``untrusted_signer``;
    keeping the verdict until sigstore has finished means
    ``untrusted_signer`` always says "valid signature, signer not trusted".
    """

    def __init__(self, expected: Sequence[_Expected]) -> None:
        self._expected = tuple(expected)
        self._verdict: tuple[str, str] | SignatureError | None = None

    def verify(self, cert: Certificate) -> None:
        try:
            self._verdict = _match_signer(cert, self._expected)
        except SignatureError as exc:
            self._verdict = exc

    def verdict(self) -> tuple[str, str]:
        if self._verdict is None:  # fail closed if sigstore ever skips the policy
            raise SignatureError("the signer's identity was not checked")
        if isinstance(self._verdict, SignatureError):
            raise self._verdict
        return self._verdict


def _verify(artifact: Path, bundle_path: Path, expected: Sequence[_Expected]) -> VerifiedSignature:
    raw = _read_bundle(bundle_path)
    digest = _sha256(artifact)
    # sigstore takes ~0.3 s to import: pay it only when a bundle is verified.
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    try:
        bundle = Bundle.from_json(raw)
    except (SigstoreError, ValueError) as exc:
        raise SignatureError(f"bundle is not valid sigstore JSON: {_one_line(exc)}") from None
    policy = _PublisherPolicy(expected)
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
    # offline is deliberate: sigstore's "TUF repository is loaded in offline mode"
    # warning would land on the operator's stderr as a stray line
    logging.getLogger("sigstore._internal.tuf").setLevel(logging.ERROR)
    try:
        Verifier.production(offline=True).verify_artifact(hashed, bundle, policy)
    except (SigstoreError, ValueError, OSError) as exc:  # OSError: unwritable TUF cache
        raise SignatureError(_reason(exc)) from None
    return _verified(policy.verdict(), bundle)


def _verified(signer: tuple[str, str], bundle: Bundle) -> VerifiedSignature:
    entry = bundle.log_entry._inner  # sigstore has no public accessor for these fields
    integrated = entry.integrated_time
    return VerifiedSignature(
        identity=signer[0],
        issuer=signer[1],
        log_index=int(entry.log_index),
        integrated_time=datetime.fromtimestamp(integrated, tz=UTC) if integrated else None,
    )


def _read_bundle(path: Path) -> bytes:
    """The bundle's bytes, once they are known to be JSON and not a legacy cosign bundle."""
    try:
        raw = path.read_bytes()
        document = json.loads(raw)
    except OSError as exc:
        raise SignatureError(f"cannot read bundle {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SignatureError(f"bundle is not valid sigstore JSON: {_one_line(exc)}") from None
    if not isinstance(document, dict):
        raise SignatureError("bundle is not valid sigstore JSON: expected a JSON object")
    if "rekorBundle" in document:
        raise SignatureError(
            "bundle is a legacy cosign bundle without an inclusion proof: "
            "re-sign with cosign v2.4+ --new-bundle-format (or cosign v3)"
        )
    if document.get("mediaType") not in _MEDIA_TYPES:
        media_type = str(document.get("mediaType"))[:80]
        raise SignatureError(f"bundle media type '{media_type}' is not a sigstore bundle v0.1-v0.3")
    return raw


def _sha256(artifact: Path) -> bytes:
    """Streamed, since plugin binaries can be large."""
    try:
        with artifact.open("rb") as stream:
            return hashlib.file_digest(stream, "sha256").digest()
    except OSError as exc:
        raise SignatureError(f"cannot read artifact {artifact}: {exc.strerror}") from None


def _match_signer(cert: Certificate, expected: Sequence[_Expected]) -> tuple[str, str]:
    """The (SAN, issuer) that a trusted identity fully matches, else SignatureError."""
    sans = _sans(cert)
    issuer = _oidc_issuer(cert)
    for pattern, want_issuer in expected:
        if issuer == want_issuer:
            for san in sans:
                if pattern.fullmatch(san):
                    return san, issuer
    shown = sans[0] if sans else "<none>"
    if len(expected) == 1:
        pattern, want_issuer = expected[0]
        reason = (
            f"issuer '{issuer}' is not '{want_issuer}'"
            if issuer != want_issuer
            else f"identity '{shown}' does not match '{pattern.pattern}'"
        )
    else:
        reason = (
            f"signature is valid but the signer '{shown}' (issuer '{issuer}') "
            "is not in trusted-signers.yaml"
        )
    raise SignatureError(reason, SignatureStatus.UNTRUSTED_SIGNER)


def _sans(cert: Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    except ExtensionNotFound:
        return []
    return [
        *names.get_values_for_type(UniformResourceIdentifier),
        *names.get_values_for_type(RFC822Name),
    ]


def _oidc_issuer(cert: Certificate) -> str | None:
    v2 = _raw_extension(cert, _OIDC_ISSUER_V2)
    if v2 is not None:
        try:
            return asn1.decode_der(str, v2)
        except ValueError:
            return None
    v1 = _raw_extension(cert, _OIDC_ISSUER_V1)
    return v1.decode(errors="replace") if v1 is not None else None


def _raw_extension(cert: Certificate, oid: ObjectIdentifier) -> bytes | None:
    try:
        value = cert.extensions.get_extension_for_oid(oid).value
    except ExtensionNotFound:
        return None
    return value.value if isinstance(value, UnrecognizedExtension) else None


def _reason(exc: Exception) -> str:
    for marker, template in _REASONS:
        if marker in str(exc):
            return template.format(detail=_one_line(exc))
    return f"signature verification failed: {_one_line(exc)}"


# Parts of sigstore's and pydantic's messages that tell an operator nothing.
_NOISE = re.compile(
    r"^(failed to load bundle|invalid log entry): "
    r"|:? (For further information|expected log_index=).*$"
)


def _one_line(exc: Exception, limit: int = 200) -> str:
    flat = _NOISE.sub("", " ".join(str(exc).split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
