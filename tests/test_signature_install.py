"""Signature policy on real installs, with the real public sigstore bundle (offline).

The fixture (../shared/fixtures/sigstore/) is a wheel released by GitHub
Actions for trailofbits/rfc8785.py and its bundle. It is not an Animus plugin,
so a verified install still stops at the manifest check: what these tests
prove is the order (signature first, under strict nothing else happens
without it) and that nothing is left installed either way.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import SIGSTORE_FIXTURES as FIXTURES
from conftest import Env

WHEEL = FIXTURES / "bundle_v3_github.whl"
BUNDLE = FIXTURES / "bundle_v3_github.whl.sigstore"
IDENTITY = r"https://github\.com/trailofbits/rfc8785\.py/\.github/workflows/release\.yml@refs/tags/v.*"
ISSUER = "https://token.actions.githubusercontent.com"

pytestmark = pytest.mark.needs_shared(WHEEL, BUNDLE)


def trust_trailofbits(env: Env) -> None:
    env.home.mkdir(parents=True, exist_ok=True)
    (env.home / "trusted-signers.yaml").write_text(
        "trusted_signers:\n"
        f"  - {{publisher: trailofbits, identity: '{IDENTITY}', issuer: '{ISSUER}'}}\n")


def artifact(tmp_path: Path, tamper: str | None = None) -> Path:
    wheel = tmp_path / WHEEL.name
    shutil.copy(WHEEL, wheel)
    shutil.copy(BUNDLE, tmp_path / (WHEEL.name + ".sigstore"))
    if tamper == "artifact":
        data = bytearray(wheel.read_bytes())
        data[len(data) // 2] ^= 0xFF
        wheel.write_bytes(bytes(data))
    elif tamper == "bundle":
        bundle = json.loads(BUNDLE.read_text())
        sig = bundle["messageSignature"]["signature"]
        bundle["messageSignature"]["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
        (tmp_path / (WHEEL.name + ".sigstore")).write_text(json.dumps(bundle))
    return wheel


def nothing_installed(env: Env) -> bool:
    plugins = env.home / "plugins"
    return not plugins.exists() or not [p for p in plugins.iterdir() if p.name not in (".plugins.lock", "plugins.yaml")]


def test_plugin_verify_prints_identity_issuer_and_log_index(env: Env) -> None:
    out = env.json("plugin", "verify", str(WHEEL), "--bundle", str(BUNDLE), "--identity", IDENTITY)
    assert out["verified"] is True
    assert out["identity"] == "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    assert out["issuer"] == ISSUER and isinstance(out["log_index"], int)
    wrong = env.run("plugin", "verify", str(WHEEL), "--bundle", str(BUNDLE), "--identity", "https://github.com/evil/.*")
    assert wrong.returncode == 2 and "identity" in wrong.stderr


def test_strict_install_verifies_first_then_checks_the_manifest(env: Env, tmp_path: Path) -> None:
    trust_trailofbits(env)
    out = env.run("plugin", "install", str(artifact(tmp_path)), "--signature-policy", "strict")
    assert out.returncode == 2
    assert "signature verification failed" not in out.stderr  # the signature passed
    assert "animus-plugin.yaml" in out.stderr  # and the wheel is no Animus plugin
    assert nothing_installed(env)


@pytest.mark.parametrize("tamper", ["artifact", "bundle"])
def test_strict_install_refuses_a_bad_signature_and_leaves_nothing(env: Env, tmp_path: Path, tamper: str) -> None:
    trust_trailofbits(env)
    out = env.run("plugin", "install", str(artifact(tmp_path, tamper)), "--signature-policy", "strict")
    assert out.returncode == 2
    assert "error: plugin signature verification failed" in out.stderr
    assert "policy: strict" in out.stderr and "reason:" in out.stderr
    assert nothing_installed(env)


def test_strict_install_refuses_an_untrusted_signer(env: Env, tmp_path: Path) -> None:
    out = env.run("plugin", "install", str(artifact(tmp_path)), "--signature-policy", "strict")
    assert out.returncode == 2 and "signature verification failed" in out.stderr
    assert nothing_installed(env)


def test_trust_key_is_accepted_and_deprecated(env: Env, tmp_path: Path) -> None:
    out = env.run("plugin", "install", str(artifact(tmp_path)), "--signature-policy", "disabled",
                  "--trust-key", str(tmp_path / "key.pem"))
    assert "--trust-key is deprecated and does nothing" in out.stderr
