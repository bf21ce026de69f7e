"""What listens or talks beyond a network namespace's own addresses: the check before Ray runs there.

psutil reads ``/proc/net``, which belongs to the reader's network namespace,
so the report is made by a process *inside* the namespace (``ip netns exec
<ns> python -m animus.workflow.remote.netns_sockets`` prints it as JSON) and
judged outside it by :func:`exposure`. A wildcard listener (``::``,
``0.0.0.0``) passes only because the interface check passes too: in a
namespace whose interfaces carry nothing but loopback and the test
addresses, "every interface" is just those.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from animus.workflow.remote.ray_cluster import is_loopback

__all__ = ["exposure", "report"]

WILDCARDS = {"0.0.0.0", "::", ""}


def _addr(ip: str) -> str:
    """``::ffff:198.18.0.2`` → ``198.18.0.2``; scope suffixes dropped."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def exposure(found: dict[str, Any], allowed: set[str]) -> list[str]:
    """What in a namespace's :func:`report` reaches beyond loopback and ``allowed``, one line each.
    A wildcard listener is fine only because the interface check passes: it then listens on those alone."""
    bad = [f"interface {name} has {ip}" for name, ip in found["addrs"]
           if not (is_loopback(ip) or _addr(ip) in allowed)]
    for c in found["conns"]:
        local, remote = _addr(c["laddr"]), _addr(c["raddr"])
        if (local not in WILDCARDS and not is_loopback(local) and local not in allowed) or (
                remote and not is_loopback(remote) and remote not in allowed):
            bad.append(f"pid {c['pid']} ({c['name']}) {c['status']} {c['laddr']}:{c['lport']} -> "
                       f"{c['raddr'] or '-'}:{c['rport'] or '-'}")
    return bad


def report() -> dict[str, Any]:
    """Interfaces and inet sockets of the namespace this process is in (run inside it)."""
    import socket

    import psutil

    addrs = [(name, a.address) for name, entries in psutil.net_if_addrs().items() for a in entries
             if a.family in (socket.AF_INET, socket.AF_INET6)]
    conns = []
    for c in psutil.net_connections(kind="inet"):
        try:
            name = psutil.Process(c.pid).name() if c.pid else "?"
        except psutil.Error:
            name = "?"
        conns.append({"pid": c.pid, "name": name, "status": c.status, "laddr": c.laddr.ip if c.laddr else "",
                      "lport": c.laddr.port if c.laddr else 0, "raddr": c.raddr.ip if c.raddr else "",
                      "rport": c.raddr.port if c.raddr else 0})
    return {"addrs": addrs, "conns": conns}


if __name__ == "__main__":
    print(json.dumps(report()))
