"""Plugin signature verification against a real Sigstore bundle, offline.

The bundle is a real one from sigstore-python's test assets (see the
fixtures' ORIGIN.md): a wheel released by GitHub Actions and logged in the
production Rekor. Nothing here mocks the verifier; every test runs with the
network guarded so that a connection attempt fails the test.
"""

from __future__ import annotations

import base64
import json
import re
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SIGSTORE_FIXTURES

from animus.errors import InvalidInput
from animus.plugin_runtime.signing import (
    DEFAULT_POLICY,
    TRUST_KEY_DEPRECATED,
    SignatureError,
    SignaturePolicy,
    SignatureStatus,
    check_artifact,
    verify_bundle,
)
from animus.plugin_runtime.trusted_signers import (
    BUILTIN_SIGNERS,
    GITHUB_ACTIONS_ISSUER,
    TrustedSigner,
    TrustedSigners,
    default_identity,
    load_trusted_signers,
)

FIXTURES = SIGSTORE_FIXTURES
ARTIFACT = FIXTURES / "bundle_v3_github.whl"
BUNDLE = FIXTURES / "bundle_v3_github.whl.sigstore"
SAN = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
IDENTITY = (
    r"https://github\.com/trailofbits/rfc8785\.py/\.github/workflows/release\.yml@refs/tags/v.*"
)
ISSUER = "https://token.actions.githubusercontent.com"

needs_fixtures = pytest.mark.needs_shared(ARTIFACT, BUNDLE)


@pytest.fixture(autouse=True)
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse and record every connection or DNS lookup: verification must be offline."""
    attempts: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
            raise OSError(f"network access during verification: {name}")

        return guarded

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    yield attempts


def edited_bundle(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], name: str = "x.bundle"
) -> Path:
    document = json.loads(BUNDLE.read_text())
    edit(document)
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def flip_base64(value: str, index: int = 10) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def tlog_entry(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = document["verificationMaterial"]["tlogEntries"][0]
    return entry


def failure(artifact: Path = ARTIFACT, bundle: Path = BUNDLE, identity: str = IDENTITY,
            issuer: str = ISSUER) -> SignatureError:  # fmt: skip
    with pytest.raises(SignatureError) as caught:
        verify_bundle(artifact, bundle, identity, issuer)
    assert "\n" not in caught.value.reason
    return caught.value


# -- verify_bundle ---------------------------------------------------------------------------


@needs_fixtures
def test_real_bundle_verifies_offline(network_attempts: list[str]) -> None:
    verified = verify_bundle(ARTIFACT, BUNDLE, IDENTITY, ISSUER)

    assert verified.identity == SAN
    assert verified.issuer == ISSUER
    assert verified.log_index == 79605083
    assert verified.integrated_time == datetime(2024, 3, 19, 22, 41, 16, tzinfo=UTC)
    assert network_attempts == []


@needs_fixtures
def test_network_guard_is_live(network_attempts: list[str]) -> None:
    # The offline proof above means something only if the guard catches a real attempt.
    with pytest.raises(OSError, match="network access"):
        socket.create_connection(("rekor.sigstore.dev", 443), timeout=1)
    assert network_attempts


@needs_fixtures
def test_identity_mismatch_names_the_signer_and_the_regex() -> None:
    error = failure(identity=r"https://github\.com/evil/.*")
    assert error.status is SignatureStatus.UNTRUSTED_SIGNER
    assert error.reason == f"identity '{SAN}' does not match 'https://github\\.com/evil/.*'"


@needs_fixtures
def test_identity_regex_must_match_the_whole_san() -> None:
    assert failure(identity=r"https://github\.com/trailofbits/").status == "untrusted_signer"
    assert failure(identity=r"github\.com/trailofbits/rfc8785\.py/.*").status == "untrusted_signer"


@needs_fixtures
def test_wrong_issuer_is_untrusted() -> None:
    error = failure(issuer="https://accounts.google.com")
    assert error.status is SignatureStatus.UNTRUSTED_SIGNER
    assert error.reason == f"issuer '{ISSUER}' is not 'https://accounts.google.com'"


@needs_fixtures
def test_tampered_artifact_is_invalid(tmp_path: Path) -> None:
    data = bytearray(ARTIFACT.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / ARTIFACT.name
    tampered.write_bytes(bytes(data))

    error = failure(artifact=tampered)
    assert error.status is SignatureStatus.INVALID
    assert error.reason == "artifact digest does not match the bundle (tampered artifact?)"
    # A broken signature wins over an untrusted identity: untrusted_signer means "valid".
    assert failure(artifact=tampered, identity="nobody").status is SignatureStatus.INVALID


def _corrupt_signature(doc: dict[str, Any]) -> None:
    doc["messageSignature"]["signature"] = flip_base64(doc["messageSignature"]["signature"])


def _corrupt_inclusion_proof(doc: dict[str, Any]) -> None:
    proof = tlog_entry(doc)["inclusionProof"]
    proof["hashes"][0] = flip_base64(proof["hashes"][0])


def _corrupt_root_hash(doc: dict[str, Any]) -> None:
    proof = tlog_entry(doc)["inclusionProof"]
    proof["rootHash"] = flip_base64(proof["rootHash"])


def _corrupt_log_index(doc: dict[str, Any]) -> None:
    tlog_entry(doc)["logIndex"] = str(int(tlog_entry(doc)["logIndex"]) + 1)


def _corrupt_certificate(doc: dict[str, Any]) -> None:
    cert = doc["verificationMaterial"]["x509CertificateChain"]["certificates"][0]
    cert["rawBytes"] = flip_base64(cert["rawBytes"], index=300)


@needs_fixtures
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_corrupt_signature, "signature does not match the artifact"),
        (_corrupt_inclusion_proof, "transparency log inclusion proof is invalid"),
        (_corrupt_root_hash, "transparency log inclusion proof is invalid"),
        (_corrupt_log_index, "transparency log inclusion proof is invalid"),
        (_corrupt_certificate, "signing certificate is not issued by Sigstore Fulcio"),
    ],
    ids=["signature", "inclusion-proof", "root-hash", "log-index", "certificate"],
)
def test_tampered_bundle_is_invalid(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    error = failure(bundle=edited_bundle(tmp_path, edit))
    assert error.status is SignatureStatus.INVALID
    assert error.reason.startswith(expected)


@needs_fixtures
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json at all", "bundle is not valid sigstore JSON: Expecting value"),
        ("[1, 2]", "bundle is not valid sigstore JSON: expected a JSON object"),
        ('{"mediaType": "application/json"}', "bundle media type 'application/json' is not"),
        ('{"base64Signature": "x", "cert": "y", "rekorBundle": {}}', "bundle is a legacy cosign"),
    ],
    ids=["not-json", "json-list", "unknown-media-type", "legacy-cosign"],
)
def test_unusable_bundle_is_invalid(tmp_path: Path, content: str, expected: str) -> None:
    bundle = tmp_path / "asset.tar.gz.bundle"
    bundle.write_text(content)
    error = failure(bundle=bundle)
    assert error.status is SignatureStatus.INVALID
    assert error.reason.startswith(expected)


@needs_fixtures
def test_structurally_broken_bundle_gives_one_line(tmp_path: Path) -> None:
    bundle = edited_bundle(tmp_path, lambda doc: tlog_entry(doc).pop("inclusionProof"))
    assert failure(bundle=bundle).reason.startswith("bundle is not valid sigstore JSON: ")


def _as_v03(media_type: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        chain = doc["verificationMaterial"].pop("x509CertificateChain")
        doc["verificationMaterial"]["certificate"] = chain["certificates"][0]
        doc["mediaType"] = media_type

    return edit


@needs_fixtures
@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("asset.whl.bundle", lambda doc: None),
        ("asset.whl.sigstore.json", lambda doc: doc.update(mediaType=
            "application/vnd.dev.sigstore.bundle+json;version=0.1")),
        ("asset.whl.bundle", _as_v03("application/vnd.dev.sigstore.bundle.v0.3+json")),
        ("asset.whl.sigstore", _as_v03("application/vnd.dev.sigstore.bundle+json;version=0.3")),
    ],
    ids=["v0.2-as-.bundle", "v0.1", "v0.3", "v0.3-alt-media-type"],
)  # fmt: skip
def test_bundle_forms(tmp_path: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    verified = verify_bundle(ARTIFACT, edited_bundle(tmp_path, edit, name), IDENTITY, ISSUER)
    assert verified.identity == SAN


def test_invalid_identity_regex_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="identity regex"):
        verify_bundle(ARTIFACT, BUNDLE, "(unclosed", ISSUER)


@needs_fixtures
def test_missing_artifact_is_reported(tmp_path: Path) -> None:
    assert failure(artifact=tmp_path / "gone.whl").reason.startswith("cannot read artifact")


# -- check_artifact: signature policy --------------------------------------------------------

TRAILOFBITS = TrustedSigner("trailofbits", IDENTITY, ISSUER)


def test_policy_names_and_default() -> None:
    assert DEFAULT_POLICY is SignaturePolicy.WARN
    assert [p.value for p in SignaturePolicy] == ["disabled", "warn", "strict"]
    assert [s.value for s in SignatureStatus] == [
        "verified", "unsigned", "invalid", "untrusted_signer", "skipped",
    ]  # fmt: skip


def test_disabled_skips_without_reading_anything(tmp_path: Path) -> None:
    check = check_artifact(
        tmp_path / "absent", tmp_path / "absent.bundle", "acme/x", SignaturePolicy.DISABLED,
        TrustedSigners(),
    )  # fmt: skip
    assert (check.status, check.refused, check.verified) == ("skipped", False, None)


@pytest.mark.parametrize("bundle", [None, Path("/nonexistent/asset.bundle")])
def test_warn_records_unsigned(bundle: Path | None) -> None:
    check = check_artifact(ARTIFACT, bundle, "acme/x", SignaturePolicy.WARN, TrustedSigners())
    assert (check.status, check.refused) == ("unsigned", False)


@needs_fixtures
def test_warn_refuses_invalid_and_records_untrusted(tmp_path: Path) -> None:
    tampered = edited_bundle(tmp_path, _corrupt_signature)
    check = check_artifact(ARTIFACT, tampered, "trailofbits", SignaturePolicy.WARN,
                           TrustedSigners((TRAILOFBITS,)))  # fmt: skip
    assert (check.status, check.refused) == ("invalid", True)  # a bundle that does not verify: never a warning

    check = check_artifact(ARTIFACT, BUNDLE, "trailofbits", SignaturePolicy.WARN, TrustedSigners())
    assert (check.status, check.refused) == ("untrusted_signer", False)
    assert check.reason.startswith(f"signature is valid but the signer '{SAN}'")


@needs_fixtures
def test_warn_records_verified() -> None:
    signers = TrustedSigners((*BUILTIN_SIGNERS, TRAILOFBITS))
    check = check_artifact(ARTIFACT, BUNDLE, "trailofbits", SignaturePolicy.WARN, signers)
    assert (check.status, check.refused) == ("verified", False)
    assert check.verified is not None and check.verified.identity == SAN


def test_strict_refuses_a_missing_bundle_with_the_runbook_block() -> None:
    check = check_artifact(ARTIFACT, None, "acme/foo", SignaturePolicy.STRICT, TrustedSigners())
    assert (check.status, check.refused) == ("unsigned", True)
    assert check.error_block("animus-subject-foo") == (
        "error: plugin signature verification failed\n"
        "  plugin: animus-subject-foo\n"
        "  policy: strict\n"
        f"  reason: {check.reason}"
    )


@needs_fixtures
def test_strict_refuses_a_bad_signature(tmp_path: Path) -> None:
    bundle = edited_bundle(tmp_path, _corrupt_inclusion_proof)
    check = check_artifact(ARTIFACT, bundle, "trailofbits/rfc8785.py", SignaturePolicy.STRICT,
                           TrustedSigners())  # fmt: skip
    assert (check.status, check.refused) == ("invalid", True)
    block = check.error_block("rfc8785")
    assert block.splitlines()[3].startswith("  reason: transparency log inclusion proof is invalid")


@needs_fixtures
def test_only_warn_trusts_an_unlisted_owner_for_its_own_release_workflow() -> None:
    # No trusted-signers entry for trailofbits: warn falls back to the repo-rooted default identity ...
    check = check_artifact(ARTIFACT, BUNDLE, "trailofbits/rfc8785.py", SignaturePolicy.WARN,
                           TrustedSigners())  # fmt: skip
    assert (check.status, check.refused) == ("verified", False)
    # ... strict does not: an owner absent from trusted-signers.yaml is not trusted at all
    check = check_artifact(ARTIFACT, BUNDLE, "trailofbits/rfc8785.py", SignaturePolicy.STRICT,
                           TrustedSigners())  # fmt: skip
    assert (check.status, check.refused) == ("untrusted_signer", True)
    listed = TrustedSigners((*BUILTIN_SIGNERS, TRAILOFBITS))
    check = check_artifact(ARTIFACT, BUNDLE, "trailofbits/rfc8785.py", SignaturePolicy.STRICT, listed)
    assert (check.status, check.refused) == ("verified", False)


@needs_fixtures
def test_strict_refuses_another_repos_signature() -> None:
    check = check_artifact(ARTIFACT, BUNDLE, "trailofbits/other", SignaturePolicy.STRICT,
                           TrustedSigners())  # fmt: skip
    assert (check.status, check.refused) == ("untrusted_signer", True)


@needs_fixtures
def test_local_artifact_accepts_any_trusted_signer() -> None:
    trusted = TrustedSigners((*BUILTIN_SIGNERS, TRAILOFBITS))
    assert (
        check_artifact(ARTIFACT, BUNDLE, None, SignaturePolicy.STRICT, trusted).status == "verified"
    )
    check = check_artifact(ARTIFACT, BUNDLE, None, SignaturePolicy.STRICT, TrustedSigners())
    assert (check.status, check.refused) == ("untrusted_signer", True)


def test_trust_key_helper_text() -> None:
    assert TRUST_KEY_DEPRECATED == (
        "--trust-key is deprecated and does nothing: trust is keyless "
        "(Sigstore Fulcio + Rekor plus the publisher identity in trusted-signers.yaml)"
    )


# -- trusted-signers.yaml --------------------------------------------------------------------


def test_builtin_first_party_signer(tmp_path: Path) -> None:
    signers = load_trusted_signers(tmp_path / "trusted-signers.yaml")  # missing file
    assert signers.signers == BUILTIN_SIGNERS
    (launchapp,) = signers.for_publisher("launchapp-dev/animus-subject-foo")
    assert launchapp.issuer == GITHUB_ACTIONS_ISSUER
    pattern = re.compile(launchapp.identity)
    release = "https://github.com/launchapp-dev/animus-subject-foo/.github/workflows/release.yml"
    assert pattern.fullmatch(f"{release}@refs/tags/v1.2.3")
    assert not pattern.fullmatch(f"{release}@refs/heads/main")
    assert not pattern.fullmatch(
        release.replace("launchapp-dev", "launchapp-devil") + "@refs/tags/v1"
    )
    assert not pattern.fullmatch(release.replace("release.yml", "ci.yml") + "@refs/tags/v1")


def test_default_identity_for_a_publisher_without_entry() -> None:
    (signer,) = TrustedSigners().for_publisher("acme/widget.py")
    assert signer.identity == default_identity("acme", "widget.py")
    assert signer.identity == (
        r"https://github\.com/acme/widget\.py/\.github/workflows/release\.yml@refs/tags/v.*"
    )
    assert TrustedSigners().for_publisher("acme") == ()


@pytest.mark.parametrize("content", ["", "trusted_signers:\n", "trusted_signers: []\n"])
def test_empty_file_keeps_the_builtins(tmp_path: Path, content: str) -> None:
    path = tmp_path / "trusted-signers.yaml"
    path.write_text(content)
    assert load_trusted_signers(path).signers == BUILTIN_SIGNERS


def test_file_entries_merge_with_the_builtins(tmp_path: Path) -> None:
    path = tmp_path / "trusted-signers.yaml"
    path.write_text(
        "trusted_signers:\n"
        "  - publisher: acme\n"
        "    identity: '^https://github\\.com/acme/[^/]+/\\.github/workflows/release\\.yml@refs/tags/v.*'\n"
        f"    issuer: {GITHUB_ACTIONS_ISSUER}\n"
        "  - publisher: launchapp-dev\n"  # a copy of the built-in one is not listed twice
        f"    identity: '{BUILTIN_SIGNERS[0].identity}'\n"
        f"    issuer: {GITHUB_ACTIONS_ISSUER}\n"
    )
    signers = load_trusted_signers(path)
    assert [s.publisher for s in signers.signers] == ["launchapp-dev", "acme"]
    assert [s.publisher for s in signers.for_publisher("ACME/widget")] == ["acme"]
    assert signers.for_publisher("launchapp-dev/x") == BUILTIN_SIGNERS


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("trusted_signers: [unclosed\n", "not valid YAML at line"),
        ("- publisher: acme\n", "expected a mapping with a 'trusted_signers' list"),
        ("trusted_signer: []\n", "unknown top-level key(s): trusted_signer"),
        ("trusted_signers: acme\n", "'trusted_signers' must be a list"),
        ("trusted_signers: [acme]\n", "trusted_signers[0] must be a mapping"),
        ("trusted_signers:\n  - {publisher: acme, identity: x}\n",
         "trusted_signers[0].issuer is missing"),
        ("trusted_signers:\n  - {publisher: acme, identity: x, issuer: y, id: z}\n",
         "trusted_signers[0] has unknown key(s): id"),
        (f"trusted_signers:\n  - {{publisher: acme, identity: '(x', issuer: '{ISSUER}'}}\n",
         "trusted_signers[0]: identity '(x' is not a valid regex"),
        ("trusted_signers:\n  - {publisher: acme, identity: x, issuer: 'http://idp'}\n",
         "trusted_signers[0]: issuer 'http://idp' is not an https:// URL"),
        (f"trusted_signers:\n  - {{publisher: acme/x, identity: x, issuer: '{ISSUER}'}}\n",
         "trusted_signers[0]: publisher 'acme/x' is not a GitHub owner name"),
    ],
    ids=["yaml", "top-level-list", "top-level-typo", "not-a-list", "entry-not-mapping",
         "missing-key", "unknown-key", "bad-regex", "issuer-not-https", "publisher-with-repo"],
)  # fmt: skip
def test_malformed_file_is_one_line_naming_the_file(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "trusted-signers.yaml"
    path.write_text(content)
    with pytest.raises(InvalidInput) as caught:
        load_trusted_signers(path)
    assert caught.value.message.startswith(f"{path}: ")
    assert problem in caught.value.message
    assert "\n" not in caught.value.one_line()
    assert caught.value.fix is not None and str(path) in caught.value.fix


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read the file"):
        load_trusted_signers(tmp_path)  # a directory
