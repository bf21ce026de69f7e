"""CURVE keys and authentication for the daemon's tcp endpoints.

Every ipc socket lives in a 0700 directory: only the daemon's user reaches
it. A tcp endpoint (the ``bus.tcp`` inputs, the Ray runners' bus input and
control socket) is reachable by anyone on the network, so each one is a
ZeroMQ CURVE server: traffic is encrypted, and a client must prove it holds
a secret key whose public half the daemon accepts (ZAP).

Keys:

- the daemon's server keypair, ``<state root>/keys/daemon.key`` (public) and
  ``daemon.key_secret`` (0600), made once and kept, so configured clients
  keep working across restarts;
- the remote runners' client keypair, made fresh at every daemon start (as
  the runners' token is) and handed to the workflows supervisor in its
  environment, and from there to each Ray task with its run spec;
- operator clients of ``bus.tcp``: one public key per file in
  ``<state root>/keys/clients/<name>.key`` (``python -m animus.bus.curve
  new-client <name>`` makes a pair and prints the client's environment).

A connection's authenticated identity travels with each of its messages
(ZeroMQ's ``User-Id`` property): :meth:`Gatekeeper.src_prefix` says which
event sources it may publish as (runners: ``runner/``; a client ``<name>``:
``remote/<name>``). Refused handshakes are counted.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from animus.bus.metrics import Metrics

__all__ = ["ClientKeys", "Gatekeeper", "server_keys", "secure_client", "ENV_KEYS", "BUS_DOMAIN",
           "CONTROL_DOMAIN", "RUNNER_SRC"]

ENV_KEYS = ("ANIMUS_CURVE_SERVER_KEY", "ANIMUS_CURVE_PUBLIC_KEY", "ANIMUS_CURVE_SECRET_KEY")
BUS_DOMAIN = "animus-bus"
CONTROL_DOMAIN = "animus-control"
RUNNER_SRC = "runner/"


@dataclass(frozen=True)
class ClientKeys:
    """What a client needs to reach a CURVE endpoint: the server's public key and its own pair (z85)."""

    server: str
    public: str
    secret: str

    def to_env(self) -> dict[str, str]:
        return dict(zip(ENV_KEYS, (self.server, self.public, self.secret)))

    def to_dict(self) -> dict[str, str]:
        return {"server": self.server, "public": self.public, "secret": self.secret}

    @classmethod
    def from_env(cls, env: Any = None) -> ClientKeys | None:
        env = os.environ if env is None else env
        values = [env.get(name) for name in ENV_KEYS]
        return cls(*values) if all(values) else None

    @classmethod
    def new(cls, server_public: str) -> ClientKeys:
        public, secret = zmq.curve_keypair()
        return cls(server_public, public.decode(), secret.decode())


def _keys_dir(state_root: Path) -> Path:
    path = state_root / "keys"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write_private(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, text.encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def server_keys(state_root: Path) -> tuple[str, str]:
    """The daemon's (public, secret) z85 keypair, made on first use."""
    folder = _keys_dir(state_root)
    public, secret = folder / "daemon.key", folder / "daemon.key_secret"
    try:
        return public.read_text().strip(), secret.read_text().strip()
    except FileNotFoundError:
        pub, sec = zmq.curve_keypair()
        _write_private(secret, sec.decode(), 0o600)  # the secret first: a public key alone is useless
        _write_private(public, pub.decode(), 0o644)
        return pub.decode(), sec.decode()


def secure_server(sock: zmq.Socket[Any], keys: tuple[str, str], domain: str) -> None:
    sock.curve_server = True
    sock.curve_publickey = keys[0].encode()
    sock.curve_secretkey = keys[1].encode()
    sock.zap_domain = domain.encode()


def secure_client(sock: zmq.Socket[Any], endpoint: str, keys: ClientKeys | None = None) -> None:
    """Make ``sock`` a CURVE client when it connects over tcp (keys: given, else from the environment)."""
    if not endpoint.startswith("tcp://"):
        return
    keys = keys or ClientKeys.from_env()
    if keys is None:
        return  # the handshake will fail and be counted at the daemon: nothing secret was sent
    sock.curve_serverkey = keys.server.encode()
    sock.curve_publickey = keys.public.encode()
    sock.curve_secretkey = keys.secret.encode()


class Gatekeeper:
    """The ZAP handler of the daemon's context: which client keys each domain accepts."""

    def __init__(self, ctx: zmq.Context[Any], state_root: Path, runner_public: str | None, metrics: Metrics) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self.clients_dir = _keys_dir(state_root) / "clients"
        self.runner_public = runner_public
        self.metrics = metrics
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        self.auth.configure_curve_callback(domain=BUS_DOMAIN, credentials_provider=self)
        self.auth.configure_curve_callback(domain=CONTROL_DOMAIN, credentials_provider=self)

    def clients(self) -> dict[str, str]:
        """Operator clients of ``bus.tcp``: public key -> name (read per handshake: edits apply at once)."""
        out = {}
        for path in sorted(self.clients_dir.glob("*.key")) if self.clients_dir.is_dir() else []:
            try:
                out[path.read_text().strip()] = path.stem
            except OSError:
                continue
        return out

    def callback(self, domain: str, key: bytes) -> bool:
        public = key.decode(errors="replace")
        ok = public == self.runner_public or (domain == BUS_DOMAIN and public in self.clients())
        if not ok:
            self.metrics.inc("tcp_handshakes_refused_total", domain=domain, reason="unknown_key")
        return ok

    def src_prefix(self, user_id: str | None) -> str | None:
        """The event sources a connection authenticated as ``user_id`` may publish as; None: none."""
        if not user_id:
            return None
        if user_id == self.runner_public:
            return RUNNER_SRC
        name = self.clients().get(user_id)
        return f"remote/{name}" if name else None

    def stop(self) -> None:
        self.auth.stop()


def new_client(state_root: Path, name: str) -> ClientKeys:
    """Authorize a new ``bus.tcp`` client ``name``; return the keys it connects with."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"client name {name!r}: use letters, digits, '-' and '_'")
    keys = ClientKeys.new(server_keys(state_root)[0])
    folder = _keys_dir(state_root) / "clients"
    folder.mkdir(mode=0o700, exist_ok=True)
    _write_private(folder / f"{name}.key", keys.public, 0o644)
    return keys


def main(argv: list[str]) -> int:
    """``python -m animus.bus.curve new-client <name>``: print the client's environment lines."""
    from animus.state.scope import resolve_scope

    if len(argv) != 2 or argv[0] != "new-client":
        print("usage: python -m animus.bus.curve new-client <name>   (run in the project)", file=sys.stderr)
        return 2
    scope = resolve_scope().ensure()
    keys = new_client(scope.root, argv[1])
    for name, value in keys.to_env().items():
        print(f"export {name}='{value}'")
    print(f"# publish with src 'remote/{argv[1]}…'; revoke: rm {scope.root}/keys/clients/{argv[1]}.key",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
