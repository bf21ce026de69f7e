"""animus plugin: list, info, ping, call, install, uninstall, update, install-defaults, verify.

``call`` goes through the daemon (control method plugin/call) when the plugin
is live there, else it probes the plugin one-shot. ``info``, ``ping`` and
``call`` fail early naming each missing required env var.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Optional

import typer

from animus.cli import context
from animus.cli.output import echo, emit_json, err, guard
from animus.errors import InvalidInput, NotFound, Unavailable

app = typer.Typer(help="Install, inspect and call plugins.", no_args_is_help=True)
JSON = typer.Option(False, "--json", help="One compact JSON line with a named schema.")
POLICY = typer.Option("warn", "--signature-policy", help="disabled | warn | strict")


def _installed(name: str) -> Any:
    from animus.cli.plugin_cmds import installed

    return installed(name)


def _live_states() -> dict[str, dict[str, Any]]:
    try:
        return {row["name"]: row for row in context.call("plugin/list", timeout=3)}
    except Unavailable:
        return {}


@app.command("list")
def list_cmd(as_json: bool = JSON) -> None:
    """Installed plugins with role, version, signature status (SIG) and live state."""
    from animus.cli import plugin_cmds

    guard(as_json, lambda: plugin_cmds.list_plugins(as_json))


@app.command()
def info(name: str = typer.Option(..., "--name"), as_json: bool = JSON) -> None:
    """Manifest, install record and initialize-time capabilities of a plugin (pinged live through the
    daemon when it runs it, else one-shot)."""
    from animus.cli import plugin_cmds

    guard(as_json, lambda: plugin_cmds.info(name, as_json))


@app.command()
def ping(name: str = typer.Option(..., "--name"), as_json: bool = JSON) -> None:
    """Spawn, handshake, $/ping, shutdown; fails if env_required is missing."""
    from animus.plugin_runtime.oneshot import probe, require_env

    def body() -> int:
        plugin = _installed(name)
        require_env(plugin)
        row = asyncio.run(probe(plugin, context.scope(), "$/ping", timeout=5, passthrough=_passthrough(name)))
        ok = row.get("status") != "unhealthy"
        if as_json:
            emit_json("animus.plugin.ping.v1", {"name": name, "ok": ok, "latency_ms": row.get("latency_ms"),
                                                "error": row.get("last_error")})
        elif ok:
            echo(f"{name}: pong in {row['latency_ms']} ms")
        else:
            raise Unavailable(f"{name}: {row.get('last_error')}", fix=f"animus plugin info --name {name}")
        return 0 if ok else 5

    guard(as_json, body)


@app.command()
def call(
    name: str = typer.Option(..., "--name"),
    method: str = typer.Option(..., "--method"),
    params: str = typer.Option("{}", "--params", help="JSON object"),
    timeout: float = typer.Option(30.0, "--timeout"),
    as_json: bool = JSON,
) -> None:
    """Send a raw JSON-RPC request and print the reply."""
    from animus.plugin_runtime.oneshot import probe, require_env

    def body() -> int:
        try:
            parsed = json.loads(params)
        except ValueError as exc:
            raise InvalidInput(f"--params is not valid JSON: {exc}", fix="--params '{\"key\": \"value\"}'") from None
        if not isinstance(parsed, dict):
            raise InvalidInput("--params must be a JSON object")
        plugin = _installed(name)
        require_env(plugin)
        live = _live_states().get(name, {})
        if live.get("state") == "running":
            reply = context.call("plugin/call", {"name": name, "method": method, "params": parsed,
                                                 "timeout": timeout}, timeout=timeout + 10)
            reply["via"] = "daemon"
        else:
            row = asyncio.run(probe(plugin, context.scope(), method, parsed, timeout=timeout,
                                    passthrough=_passthrough(name)))
            if "result" in row:
                reply = {"result": row["result"]}
            elif "error" in row:
                reply = {"error": row["error"]}
            else:
                raise Unavailable(f"{name}: {row.get('last_error')}", fix=f"animus plugin info --name {name}")
            reply["via"] = "one-shot"
        reply = {"jsonrpc": "2.0", "id": 1, **reply}
        if as_json:
            emit_json("animus.plugin.call.v1", reply)
        else:
            echo(json.dumps(reply, indent=2, default=str))
        return 0 if "result" in reply else 1

    guard(as_json, body)


@app.command()
def install(
    source: str = typer.Argument(..., help="A plugin folder, a .tar.gz (with .bundle beside it), or owner/repo[@tag]."),
    signature_policy: str = POLICY,
    force: bool = typer.Option(False, "--force", help="Reinstall even if installed."),
    trust_key: Optional[str] = typer.Option(None, "--trust-key", help="Deprecated; does nothing."),
    trusted_signers: Optional[Path] = typer.Option(None, "--trusted-signers", help="Trusted signers file."),
    as_json: bool = JSON,
) -> None:
    """Install a plugin."""
    from animus.plugin_runtime.install import install as do_install

    def body() -> int:
        if trust_key:
            from animus.plugin_runtime.signing import TRUST_KEY_DEPRECATED

            err(f"warning: {TRUST_KEY_DEPRECATED}")
        entry = do_install(context.scope(), source, signature_policy, force, trusted_signers,
                           progress=None if as_json else err)
        if as_json:
            emit_json("animus.plugin.install.v1", {"installed": entry})
        return 0

    guard(as_json, body)


@app.command("install-defaults")
def install_defaults(
    include_subjects: bool = typer.Option(False, "--include-subjects"),
    include_transports: bool = typer.Option(False, "--include-transports"),
    include_triggers: bool = typer.Option(False, "--include-triggers",
                                          help="Also the cron, file-watcher and webhook trigger plugins."),
    force: bool = typer.Option(False, "--force"),
    as_json: bool = JSON,
) -> None:
    """Install the first-party plugin set that ships with animus."""
    from animus.plugin_runtime.install import install_defaults as do_defaults

    def body() -> int:
        done = do_defaults(context.scope(), include_subjects, include_transports, force,
                           progress=None if as_json else err, include_triggers=include_triggers)
        if as_json:
            emit_json("animus.plugin.install_defaults.v1", {"installed": done})
        else:
            echo(f"installed {len(done)} plugin(s)" + (f": {', '.join(done)}" if done else " (all up to date)"))
        return 0

    guard(as_json, body)


@app.command()
def uninstall(name: str = typer.Option(..., "--name"), as_json: bool = JSON) -> None:
    """Remove a plugin (takes effect at the next daemon start)."""
    from animus.plugin_runtime.install import uninstall as do_uninstall

    def body() -> int:
        do_uninstall(context.scope(), name)
        if as_json:
            emit_json("animus.plugin.uninstall.v1", {"removed": name})
        else:
            echo(f"uninstalled {name}")
            if _live_states():
                err("note: the running daemon keeps it until restart: animus daemon stop && animus daemon start")
        return 0

    guard(as_json, body)


@app.command()
def update(
    name: Optional[str] = typer.Argument(None),
    tag: Optional[str] = typer.Option(None, "--tag"),
    dry_run: bool = typer.Option(False, "--dry-run"),
    signature_policy: Optional[str] = typer.Option(
        None, "--signature-policy", help="disabled | warn | strict (default: each install's own; never weaker)"),
    as_json: bool = JSON,
) -> None:
    """Update one or all installed plugins from their source, under each one's signature policy."""
    from animus.plugin_runtime.update import update_plugins

    def body() -> int:
        report = update_plugins(context.scope(), name, tag, dry_run, signature_policy,
                                progress=None if as_json else err)
        if as_json:
            emit_json("animus.plugin.update.v1", {"dry_run": dry_run, "plugins": report})
        else:
            for row in report:
                echo(f"{row['name']:<20} {row['action']:<12} {row.get('detail', '')}")
        return 0 if all(r["action"] != "failed" for r in report) else 5

    guard(as_json, body)


@app.command()
def verify(
    artifact: Path = typer.Argument(..., help="The artifact (tarball, wheel …)."),
    bundle: Path = typer.Option(..., "--bundle", help="Its sigstore bundle."),
    identity: Optional[str] = typer.Option(None, "--certificate-identity-regexp", "--identity",
                                           help="Identity regex (default: the trusted signers)."),
    issuer: str = typer.Option("https://token.actions.githubusercontent.com", "--certificate-oidc-issuer", "--issuer"),
    as_json: bool = JSON,
) -> None:
    """Verify a sigstore bundle offline; print identity, issuer and log index."""
    from animus.plugin_runtime.signing import SignaturePolicy, check_artifact, verify_bundle
    from animus.plugin_runtime.trusted_signers import load_trusted_signers

    def body() -> int:
        for path in (artifact, bundle):
            if not path.is_file():
                raise NotFound(f"{path}: no such file")
        if identity:
            v = verify_bundle(artifact, bundle, identity, issuer)
        else:
            check = check_artifact(artifact, bundle, None, SignaturePolicy.STRICT,
                                   load_trusted_signers(context.scope().home / "trusted-signers.yaml"))
            if check.verified is None:
                from animus.plugin_runtime.signing import SignatureError

                raise SignatureError(check.reason, check.status)
            v = check.verified
        data = {"verified": True, "identity": v.identity, "issuer": v.issuer, "log_index": v.log_index,
                "integrated_time": v.integrated_time.isoformat() if v.integrated_time else None}
        if as_json:
            emit_json("animus.plugin.verify.v1", data)
        else:
            echo(f"verified: {artifact.name}")
            echo(f"identity: {v.identity}")
            echo(f"issuer: {v.issuer}")
            echo(f"log index: {v.log_index}")
        return 0

    guard(as_json, body)


def _passthrough(name: str) -> list[str]:
    """The variables the operator passes to plugin ``name`` (``plugins.<name>.env`` in config.yaml)."""
    from animus.daemon.config import load_daemon_config

    return load_daemon_config(context.scope().project_root).plugin_env(name)
