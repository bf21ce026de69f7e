"""A scriptable probe plugin for tests (as dramatiq ships a stub broker).

Behaviour comes from the ``PROBE_MODE`` environment variable (declared in
the manifest the tests write, so it crosses the env filter):

- ``ok``: a well-behaved plugin (``echo``, ``sleep``, ``spawn_grandchild``, ``pid``, ``env``)
- ``crash_on_init``: exits 3 before connecting, with a line on stderr
- ``hang_handshake``: connects, announces itself, never answers initialize
- ``garbage``: answers initialize with a non-msgpack frame
- ``wrong_protocol``: claims protocol 2.0.0
- ``ignore_sigterm``: ignores SIGTERM (the supervisor must SIGKILL it)
- ``exit:N``: exits with code N once initialized
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from animus.plugin_runtime import protocol as p
from animus.plugin_runtime.sdk import Plugin, RequestContext, method, run_plugin

__all__ = ["ProbePlugin", "main"]


class ProbePlugin(Plugin):
    name = os.environ.get(p.ENV_ID, "probe")
    role = os.environ.get("PROBE_ROLE", "provider")
    version = "0.0.1"
    description = "scriptable probe worker for tests"
    subject_kinds = [k for k in os.environ.get("PROBE_KINDS", "").split(",") if k]
    handle_sigterm = os.environ.get("PROBE_MODE") != "ignore_sigterm"

    def on_initialize(self, params: dict[str, Any]) -> None:
        mode = os.environ.get("PROBE_MODE", "ok")
        if mode.startswith("exit:"):
            os._exit(int(mode.split(":", 1)[1]))

    @method("probe/echo")
    def echo(self, params: dict[str, Any], ctx: RequestContext) -> Any:
        return params

    @method("probe/sleep")
    def sleep(self, params: dict[str, Any], ctx: RequestContext) -> Any:
        if params.get("mark"):  # a file that says the call arrived (tests wait on it)
            Path(str(params["mark"])).touch()
        ctx.cancelled.wait(float(params.get("seconds", 1)))
        return {"slept": True, "cancelled": ctx.cancelled.is_set()}

    @method("probe/spawn_grandchild")
    def spawn_grandchild(self, params: dict[str, Any], ctx: RequestContext) -> Any:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        return {"pid": child.pid}

    @method("probe/pid")
    def pid(self, params: dict[str, Any], ctx: RequestContext) -> Any:
        return {"pid": os.getpid()}

    @method("probe/env")
    def env(self, params: dict[str, Any], ctx: RequestContext) -> Any:
        """What the host gave this process: its environment and working directory."""
        return {"env": dict(os.environ), "cwd": os.getcwd()}


def _raw_peer(mode: str) -> None:
    """Speak just enough of the protocol to misbehave in a chosen way."""
    import zmq

    from animus.bus.codec import pack, unpack

    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, f"{os.environ[p.ENV_ID]}:{os.getpid()}".encode())
    sock.connect(os.environ[p.ENV_ENDPOINT])
    sock.send(pack(p.notification("$/ready", {"pid": os.getpid()})))
    msg = unpack(sock.recv())
    if mode == "garbage":
        sock.send(b"\xc1this is not msgpack")
    elif mode == "wrong_protocol":
        sock.send(pack(p.result(msg["id"], {"protocol_version": "2.0.0", "plugin_info": {"name": "probe"},
                                             "capabilities": {}})))
    time.sleep(600)


def main() -> None:
    mode = os.environ.get("PROBE_MODE", "ok")
    if "--manifest" not in sys.argv:
        if mode == "crash_on_init":
            print("probe: crashing on init as asked (PROBE_MODE=crash_on_init)", file=sys.stderr)
            sys.exit(3)
        if mode in ("hang_handshake", "garbage", "wrong_protocol"):
            from animus.process.handle import set_parent_death_signal

            set_parent_death_signal()
            if mode == "hang_handshake":
                mode = "hang"
            _raw_peer(mode)
            return
        if mode == "ignore_sigterm":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    run_plugin(ProbePlugin)


if __name__ == "__main__":
    main()
