"""The web UI's files, fetched from the ``web-ui`` plugin and cached here.

The transport does not own the UI: the ``web-ui`` plugin does, and serves
its files over the plugin protocol (``web/manifest`` → ``{entry, assets:
{path: {sha256, content_type, size}}}``, ``web/asset {path}`` → ``{body,
content_type, sha256}``), reached like everything else through the daemon's
control socket (``plugin/call``). The transport keeps each file by its
sha256, asks for the manifest again at most every ``MANIFEST_TTL`` seconds,
and answers with an ETag so browsers revalidate cheaply. A UI that is not
installed or not running is a 503 naming the fix, not a blank page.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from animus.errors import NotFound, Unavailable
from animus.plugins.transports.link import DaemonLink

__all__ = ["UiAssets", "Asset", "UI_HEADERS"]

MANIFEST_TTL = 2.0
# Everything the page needs is served from here: no CDN, no inline script.
UI_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
_FIX = "animus plugin install-defaults --include-transports, then animus daemon stop && animus daemon start"


@dataclass(frozen=True)
class Asset:
    path: str
    body: bytes
    content_type: str
    sha256: str


class UiAssets:
    def __init__(self, link: DaemonLink, plugin: str = "web-ui") -> None:
        self.link = link
        self.plugin = plugin
        self.manifest: dict[str, Any] | None = None
        self.fetched_at = 0.0
        self.cache: dict[str, Asset] = {}

    async def _call(self, method: str, params: dict[str, Any]) -> Any:
        try:
            reply = await self.link.call("plugin/call", {"name": self.plugin, "method": method,
                                                         "params": params, "timeout": 5}, timeout=10)
        except NotFound:
            raise Unavailable(f"the {self.plugin} plugin is not installed", fix=_FIX) from None
        except Unavailable as exc:
            raise Unavailable(f"the {self.plugin} plugin is not available: {exc.message}", fix=exc.fix) from None
        if "error" in reply:
            err = reply["error"] or {}
            if (err.get("data") or {}).get("error_code") == "not_found":
                raise NotFound(str(err.get("message", "no such file")))
            raise Unavailable(f"{self.plugin}: {err.get('message')}")
        return reply.get("result")

    async def _manifest(self) -> dict[str, Any]:
        if self.manifest is None or time.monotonic() - self.fetched_at > MANIFEST_TTL:
            self.manifest = await self._call("web/manifest", {})
            self.fetched_at = time.monotonic()
        return self.manifest

    async def entry(self) -> str:
        return str((await self._manifest()).get("entry") or "index.html")

    async def get(self, path: str) -> Asset:
        listed = (await self._manifest()).get("assets", {}).get(path)
        if listed is None:
            raise NotFound(f"the web UI has no file {path!r}")
        cached = self.cache.get(path)
        if cached is not None and cached.sha256 == listed.get("sha256"):
            return cached
        got = await self._call("web/asset", {"path": path})
        asset = Asset(path, bytes(got["body"]), str(got["content_type"]), str(got["sha256"]))
        self.cache[path] = asset
        return asset
