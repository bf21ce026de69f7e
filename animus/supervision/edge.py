"""The root's network edge: everything it binds on tcp://, and what guards it.

Only two things ever listen beyond the 0700 socket directory:

- the bus's tcp inputs (``bus.tcp`` in the config, and with
  ``runners.backend: ray`` one on ``runners.ray.daemon_address``), through
  the checking gate of ``animus.bus.gate``;
- with the ray backend, the runners' control socket: a ROUTER that serves
  only ``REMOTE_METHODS`` and wants the per-start token in every request.

Both are CURVE servers (``animus.bus.curve``) with one ZAP handler for the
context. The remote runners' credentials are made here at each start: the
token and a client keypair; :meth:`RemoteEdge.runner_env` is how they reach
the workflows supervisor (its environment at spawn, never a file), which
hands them to each Ray task with its run spec.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from animus.bus.curve import CONTROL_DOMAIN, ClientKeys, Gatekeeper, secure_server, server_keys
from animus.bus.gate import TcpGate
from animus.bus.metrics import Metrics

__all__ = ["RemoteEdge", "ENV_RUNNER_TOKEN", "CONTROL_MAX_BYTES"]

ENV_RUNNER_TOKEN = "ANIMUS_RUNNERS_TOKEN"
CONTROL_MAX_BYTES = 16 * 1024 * 1024  # read before the token is checked: bounded


class RemoteEdge:
    def __init__(self, ctx: zmq.Context[Any], actx: zmq.asyncio.Context, state_root: Path, metrics: Metrics,
                 bus_endpoints: list[str], broker_input: str, runners_address: str | None) -> None:
        self.keys = server_keys(state_root)
        self.runner_keys: ClientKeys | None = None
        self.token: str | None = None
        if runners_address is not None:
            self.token = secrets.token_urlsafe(32)
            self.runner_keys = ClientKeys.new(self.keys[0])
            bus_endpoints = [*bus_endpoints, f"tcp://{runners_address}:*"]
        self.keeper = Gatekeeper(ctx, state_root, self.runner_keys.public if self.runner_keys else None, metrics)
        self.control: zmq.asyncio.Socket | None = None
        try:
            self.gate = TcpGate(ctx, bus_endpoints, broker_input, self.keys, self.keeper, metrics)
            self.gate.start()
            if runners_address is not None:
                self.control = self._bind_control(actx, runners_address)
        except BaseException:
            self.keeper.stop()
            raise
        self.remote_endpoints: dict[str, str] = {}
        if self.control is not None:
            self.remote_endpoints = {"bus_endpoint": self.gate.bound[-1],
                                     "control_endpoint": self.control.getsockopt_string(zmq.LAST_ENDPOINT)}

    def _bind_control(self, actx: zmq.asyncio.Context, address: str) -> zmq.asyncio.Socket:
        sock = actx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, CONTROL_MAX_BYTES)
        secure_server(sock, self.keys, CONTROL_DOMAIN)
        sock.bind(f"tcp://{address}:*")
        return sock

    def runner_env(self) -> dict[str, str]:
        """What the workflows supervisor needs to hand remote runners: token and CURVE keys."""
        if self.token is None or self.runner_keys is None:
            return {}
        return {ENV_RUNNER_TOKEN: self.token, **self.runner_keys.to_env()}

    def close(self) -> None:
        self.gate.stop()
        if self.control is not None:
            self.control.close(linger=0)
        self.keeper.stop()
