"""Installing plugins: from a folder, a tarball (+ sigstore bundle), a GitHub
release, or the first-party set that ships inside the animus package.

Every source goes through one path: stage into a temp folder beside the
plugins folder, check the signature policy and the manifest, then rename
into place and record it in ``plugins.yaml``. A refused or failed install
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animus.errors import Conflict, InvalidInput, NotFound, Unavailable
from animus.plugin_runtime.catalog import DEFAULT_SETS, builtin_catalog
from animus.plugin_runtime.manifest import MANIFEST_FILE, Manifest, load_manifest
from animus.plugin_runtime.registry import Registry
from animus.state.scope import Scope

__all__ = ["install", "install_defaults", "uninstall", "builtin_catalog", "DEFAULT_SETS", "dir_sha256",
           "file_sha256"]

_RELEASE = re.compile(r"^(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+)(@(?P<tag>[^/\s]+))?$")


def dir_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _bundle_beside(artifact: Path) -> Path | None:
    for suffix in (".bundle", ".sigstore", ".sigstore.json"):
        candidate = artifact.with_name(artifact.name + suffix)
        if candidate.is_file():
            return candidate
    return None


MAX_ARTIFACT_BYTES = 256 << 20  # a download or a tarball
MAX_BUNDLE_BYTES = 1 << 20
MAX_UNPACKED_BYTES = 512 << 20
MAX_MEMBERS = 20_000


_REBUILD = "rebuild the archive from the plugin folder: tar czf <name>.tar.gz <folder>"


def _too_big(what: str, limit: int) -> InvalidInput:
    return InvalidInput(f"{what} is larger than {limit >> 20} MiB", fix="a plugin is a small folder; check the source")


def _outside(shown: str, member: str, what: str = "member") -> InvalidInput:
    return InvalidInput(f"{shown}: {what} {member!r} would land outside the plugin folder", fix=_REBUILD)


def _inside(root: Path, member: str) -> bool:
    target = (root / member).resolve()
    return target == root or target.is_relative_to(root)


def _extract_zip(archive: Path, dest: Path, shown: str) -> None:
    """A wheel or zip: refuse members that would land outside ``dest``, or too many or too big."""
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise _too_big(f"{shown} unpacked", MAX_UNPACKED_BYTES)
        for member in members:
            if not _inside(root, member.filename):
                raise _outside(shown, member.filename)
        zf.extractall(dest)


def _check_tar(tar: tarfile.TarFile, shown: str, root: Path) -> None:
    """What ``filter="data"`` refuses, checked up front (so Pythons before 3.11.4 are safe
    too), plus limits on the member count and the unpacked size."""
    members = tar.getmembers()
    if len(members) > MAX_MEMBERS or sum(m.size for m in members if m.isfile()) > MAX_UNPACKED_BYTES:
        raise _too_big(f"{shown} unpacked", MAX_UNPACKED_BYTES)
    for m in members:
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise InvalidInput(f"{shown}: member {m.name!r} is not a file, a folder or a link", fix=_REBUILD)
        if Path(m.name).is_absolute() or not _inside(root, m.name):
            raise _outside(shown, m.name)
        target = str(Path(m.name).parent / m.linkname) if m.issym() else m.linkname
        if (m.issym() or m.islnk()) and (Path(m.linkname).is_absolute() or not _inside(root, target)):
            raise _outside(shown, m.name, "link")


def _extract(tarball: Path, dest: Path, shown: str) -> Path:
    try:
        if zipfile.is_zipfile(tarball):
            _extract_zip(tarball, dest, shown)
        else:
            with tarfile.open(tarball, "r:*") as tar:
                dest.mkdir(parents=True, exist_ok=True)
                _check_tar(tar, shown, dest.resolve())
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(dest, filter="data")
                else:  # Python < 3.11.4: every member was checked above
                    tar.extractall(dest)  # noqa: S202
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise InvalidInput(f"{shown}: not a readable plugin tarball ({exc})",
                           fix="build it with tar czf <name>.tar.gz <plugin folder>") from None
    if (dest / MANIFEST_FILE).is_file():
        return dest
    subdirs = [d for d in dest.iterdir() if d.is_dir()]
    if len(subdirs) == 1 and (subdirs[0] / MANIFEST_FILE).is_file():
        return subdirs[0]
    raise InvalidInput(f"{shown}: no {MANIFEST_FILE} at its top level",
                       fix="put the manifest at the root of the tarball (or in its single top folder)")


def _copy_capped(src: Any, target: Path, limit: int, what: str) -> None:
    """Copy a stream to ``target``, refusing it once it passes ``limit`` bytes."""
    total = 0
    with open(target, "wb") as out:
        while chunk := src.read(1 << 20):
            total += len(chunk)
            if total > limit:
                raise _too_big(what, limit)
            out.write(chunk)


def _stage(artifact: Path, bundle: Path | None, staging: Path) -> tuple[Path, Path | None]:
    """Private copies of a local artifact and its bundle: the bytes verified are the bytes installed."""
    target = staging / artifact.name
    with open(artifact, "rb") as src:
        _copy_capped(src, target, MAX_ARTIFACT_BYTES, str(artifact))
    staged_bundle = None
    if bundle is not None:
        staged_bundle = staging / (artifact.name + ".bundle")
        with open(bundle, "rb") as src:
            _copy_capped(src, staged_bundle, MAX_BUNDLE_BYTES, str(bundle))
    return target, staged_bundle


def _download(owner: str, repo: str, tag: str | None, dest: Path) -> tuple[Path, Path | None, str]:
    base = f"https://github.com/{owner}/{repo}/releases"
    asset = f"{repo}.tar.gz"
    url = f"{base}/download/{tag}/{asset}" if tag else f"{base}/latest/download/{asset}"
    target = dest / asset
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            _copy_capped(resp, target, MAX_ARTIFACT_BYTES, url)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"cannot download {owner}/{repo}{'@' + tag if tag else ''} from GitHub: {reason}",
                          fix="check network access, or install a local copy: animus plugin install ./plugin.tar.gz") from None
    bundle: Path | None = dest / (asset + ".bundle")
    assert bundle is not None
    try:
        with urllib.request.urlopen(url + ".bundle", timeout=15) as resp:
            _copy_capped(resp, bundle, MAX_BUNDLE_BYTES, url + ".bundle")
    except (urllib.error.URLError, OSError):
        bundle = None
    return target, bundle, url


@dataclass
class _Fetched:
    """A plugin source made local: a folder to install, or an artifact still to verify and unpack."""

    source: str  # as recorded in plugins.yaml
    folder: Path | None = None
    sha: str = ""
    artifact: Path | None = None
    bundle: Path | None = None
    publisher: str | None = None  # owner/repo of a release, for the signer's identity


def _fetch(source: str, staging: Path, say: Callable[[str], None]) -> _Fetched:
    catalog = builtin_catalog()
    if source.startswith("builtin:") or source in catalog:
        name = source.removeprefix("builtin:")
        if name not in catalog:
            raise NotFound(f"no first-party plugin named {name!r} in this build",
                           fix=f"available: {', '.join(sorted(catalog)) or 'none'}")
        return _Fetched(f"builtin:{name}", catalog[name], file_sha256(catalog[name] / MANIFEST_FILE))
    local = Path(source).expanduser()
    match = _RELEASE.match(source)
    if local.is_dir():
        return _Fetched(f"path:{local.resolve()}", local.resolve(), dir_sha256(local))
    if local.is_file():
        artifact, bundle = _stage(local.resolve(), _bundle_beside(local), staging)
        return _Fetched(f"tarball:{local.resolve()}", artifact=artifact, bundle=bundle)
    if match and not local.exists():
        say(f"downloading {source} …")
        artifact, bundle, _url = _download(match["owner"], match["repo"], match["tag"], staging)
        return _Fetched(f"github:{source}", artifact=artifact, bundle=bundle,
                        publisher=f"{match['owner']}/{match['repo']}")
    raise NotFound(f"plugin source {source!r} is not a folder, a tarball or owner/repo[@tag]",
                   fix="animus plugin install ./my-plugin, ./my-plugin.tar.gz or owner/repo@v1.0.0")


def _verify(fetched: _Fetched, policy: Any, signers: Path, staging: Path,
            say: Callable[[str], None]) -> dict[str, Any]:
    """Check an artifact's signature under ``policy`` (refusing as it says), then unpack the bytes checked."""
    from animus.plugin_runtime.signing import SignatureStatus, check_artifact
    from animus.plugin_runtime.trusted_signers import load_trusted_signers

    assert fetched.artifact is not None
    check = check_artifact(fetched.artifact, fetched.bundle, fetched.publisher, policy, load_trusted_signers(signers))
    signature: dict[str, Any] = {"status": str(check.status), "reason": check.reason, "policy": str(policy)}
    if check.verified is not None:
        signature |= {"identity": check.verified.identity, "issuer": check.verified.issuer,
                      "log_index": check.verified.log_index}
    if check.refused:
        raise SignatureRefused(check.error_block(fetched.artifact.name))
    if check.status not in (SignatureStatus.VERIFIED, SignatureStatus.SKIPPED):
        say(f"warning: signature {check.status}: {check.reason} (policy {policy})")
    fetched.sha = file_sha256(fetched.artifact)
    fetched.folder = _extract(fetched.artifact, staging / "unpacked", fetched.source.partition(":")[2])
    return signature


def install(scope: Scope, source: str, policy: str = "warn", force: bool = False,
            trusted_signers: Path | None = None, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Install one plugin; return its ``plugins.yaml`` entry (plus the signature check)."""
    from animus.plugin_runtime.signing import SignaturePolicy

    try:
        sig_policy = SignaturePolicy(policy)
    except ValueError:
        raise InvalidInput(f"--signature-policy must be disabled, warn or strict, got {policy!r}") from None
    say = progress or (lambda _msg: None)
    scope.plugins_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=scope.plugins_dir))
    try:
        fetched = _fetch(source, staging, say)
        signature: dict[str, Any] = {"status": "unverified", "policy": str(sig_policy)}  # update keeps the policy
        if fetched.source.startswith("builtin:"):
            signature = {"status": "builtin", "reason": "ships inside the animus package", "policy": str(sig_policy)}
        elif fetched.artifact is not None:
            signers = trusted_signers or scope.home / "trusted-signers.yaml"
            signature = _verify(fetched, sig_policy, signers, staging, say)
        assert fetched.folder is not None
        manifest = load_manifest(fetched.folder)
        if sig_policy is SignaturePolicy.STRICT and signature["status"] == "unverified":
            raise SignatureRefused("\n".join(["error: plugin signature verification failed",
                                              f"  plugin: {manifest.name}", "  policy: strict",
                                              "  reason: a plugin folder carries no signature"]))
        return _place(scope, manifest, fetched, signature, staging, force, say)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _place(scope: Scope, manifest: Manifest, fetched: _Fetched, signature: dict[str, Any], staging: Path,
           force: bool, say: Callable[[str], None]) -> dict[str, Any]:
    """Copy the plugin into the plugins folder (swapped in whole) and record it."""
    assert fetched.folder is not None
    registry = Registry(scope.plugins_dir)
    existing = registry.entries().get(manifest.name)
    if existing and not force and existing.get("sha256") == fetched.sha:
        say(f"{manifest.name} {manifest.version} already installed")
        return existing | {"unchanged": True}
    if existing and not force and existing.get("source") != fetched.source:
        raise Conflict(f"plugin {manifest.name} is already installed from {existing.get('source')}",
                       fix=f"animus plugin uninstall --name {manifest.name}, or add --force")
    dest = _destination(scope.plugins_dir, manifest.name)
    final_src = staging / "final"
    shutil.copytree(fetched.folder, final_src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _swap_into_place(final_src, dest)
    installed = load_manifest(dest)
    entry = registry.record(installed, dest, fetched.source, fetched.sha, signature)
    say(f"installed {installed.name} {installed.version} ({installed.role})")
    return entry


class SignatureRefused(InvalidInput):
    """Strict policy refused the artifact; the message is the runbook's block.

    The fix travels in ``--json`` output; the text form is the block alone.
    """

    def __init__(self, block: str) -> None:
        super().__init__(block, fix="install a signed release, or for an unsigned local build: "
                                    "animus plugin install <source> --signature-policy disabled")

    def one_line(self) -> str:
        return self.message.removeprefix("error: ")


def _destination(plugins_dir: Path, name: str) -> Path:
    """``plugins_dir/name``, refused unless it resolves to a direct child of the plugins folder."""
    root = plugins_dir.resolve()
    dest = (root / name).resolve()
    if dest.parent != root or dest.name != name:
        raise InvalidInput(f"plugin name {name!r} would install outside {root}",
                           fix="rename the plugin in its animus-plugin.yaml")
    return dest


def _swap_into_place(new: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def install_defaults(scope: Scope, include_subjects: bool = False, include_transports: bool = False,
                     force: bool = False, progress: Callable[[str], None] | None = None,
                     include_triggers: bool = False) -> list[str]:
    catalog = builtin_catalog()
    wanted = list(DEFAULT_SETS["base"])
    if include_subjects:
        wanted += DEFAULT_SETS["subjects"]
    if include_transports:
        wanted += DEFAULT_SETS["transports"]
    if include_triggers:
        wanted += DEFAULT_SETS["triggers"]
    done = []
    for name in wanted:
        if name not in catalog:
            continue  # not built yet: never listed as installable
        entry = install(scope, f"builtin:{name}", force=force, progress=progress)
        if not entry.get("unchanged"):
            done.append(name)
    return done


def uninstall(scope: Scope, name: str) -> Manifest | None:
    registry = Registry(scope.plugins_dir)
    entry = registry.remove(name)
    if entry is None:
        raise NotFound(f"plugin {name!r} is not installed", fix="animus plugin list")
    path = Path(entry.get("path", ""))
    if path.is_dir() and not path.is_symlink() and path.resolve().parent == scope.plugins_dir.resolve():
        shutil.rmtree(path, ignore_errors=True)
    return None
