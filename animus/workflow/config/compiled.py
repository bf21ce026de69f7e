"""The compiled config: ``state/workflow-config.v1.json``, a versioned JSON snapshot.

Written atomically, read back with its schema and content hash checked;
deleting it is always safe (the daemon rebuilds it from the YAML at start).
A process keeps the last config it read with the bytes it came from: the
workflows supervisor reads the file for every new run, and the same bytes
need no second parse, hash and model build (~1 ms).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from animus.errors import InvalidInput, NotFound
from animus.state.files import atomic_write, file_identity
from animus.workflow.model import WorkflowConfig, config_from_plain, to_plain

__all__ = ["COMPILED_FILE", "SCHEMA", "compile_config", "read_compiled", "refresh_compiled", "write_compiled"]

SCHEMA = "animus.workflow.compiled.v1"
COMPILED_FILE = "workflow-config.v1.json"


def _canonical(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compile_config(cfg: WorkflowConfig) -> dict[str, Any]:
    """The versioned, JSON-ready form of ``cfg``, with a hash of its content."""
    body = to_plain(cfg)
    return {"schema": SCHEMA, "hash": "sha256:" + hashlib.sha256(_canonical(body)).hexdigest(),
            **body}


def write_compiled(cfg: WorkflowConfig, state_dir: Path) -> Path:
    """Write ``state_dir/workflow-config.v1.json`` atomically (tmp, fsync, rename), unless it
    already holds exactly these bytes (every daemon start compiles; the YAML rarely changed)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_dir / COMPILED_FILE
    data = json.dumps(compile_config(cfg), indent=2, sort_keys=True).encode() + b"\n"
    try:
        if target.read_bytes() == data:
            return target
    except OSError:
        pass  # missing or unreadable: written below
    atomic_write(target, data)
    return target


# path -> (the file's identity, the bytes read, their config)
_last: dict[Path, tuple[tuple[int, int, int], bytes, WorkflowConfig]] = {}


def read_compiled(state_dir: Path) -> WorkflowConfig:
    """Read back what ``write_compiled`` wrote; a damaged file is reported, not guessed at.

    The file is read again only when its identity changed (``write_compiled`` replaces it, a new
    inode), and parsed again only when its bytes did: the zygote checks it after each runner it
    forks, where every allocation is a page copied while the runner shares it."""
    path = state_dir / COMPILED_FILE
    try:
        identity = file_identity(path)
        if (last := _last.get(path)) and last[0] == identity:
            return last[2]
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist", fix="start the daemon to compile it") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: unreadable compiled config: {exc}",
                           fix=f"delete {path}; the daemon rebuilds it from the YAML at start") from None
    cfg = last[2] if last and last[1] == raw else _parse(path, raw)
    _last.clear()
    _last[path] = (identity, raw, cfg)
    return cfg


def _parse(path: Path, raw: bytes) -> WorkflowConfig:
    fix = f"delete {path}; the daemon rebuilds it from the YAML at start"
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"{path}: unreadable compiled config: {exc}", fix=fix) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise InvalidInput(f"{path}: schema {found!r} is not {SCHEMA}", fix=fix)
    body = {k: v for k, v in data.items() if k not in ("schema", "hash")}
    if data.get("hash") != "sha256:" + hashlib.sha256(_canonical(body)).hexdigest():
        raise InvalidInput(f"{path}: content does not match its hash", fix=fix)
    try:
        return config_from_plain(body)
    except (KeyError, TypeError, ValueError, AttributeError, InvalidInput) as exc:
        raise InvalidInput(f"{path}: malformed compiled config: {exc!r}", fix=fix) from None


def refresh_compiled(project_root: Path, env: Mapping[str, str], state_dir: Path) -> WorkflowConfig:
    """Load and validate every file, then write the compiled config; nothing on failure."""
    from animus.workflow.config.merge import load_workflow_config  # YAML: not in a runner, which only reads

    cfg = load_workflow_config(project_root, env)
    write_compiled(cfg, state_dir)
    return cfg
