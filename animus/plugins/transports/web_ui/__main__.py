"""``web-ui`` plugin process: hands its page's files to the HTTP transport.

Methods: ``web/manifest`` → ``{entry, version, assets: {path: {sha256,
content_type, size}}}`` and ``web/asset {path}`` → ``{path, body (bytes),
content_type, sha256}``. Files are read once at start (they are part of the
installed package); a path outside the manifest is a ``not_found`` error,
so nothing but the listed files can ever be read through it.
SIGTERM: nothing to release; the SDK ends the process at once.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Any

from animus.plugin_runtime.sdk import Plugin, RequestContext, RpcError, method, run_plugin

ASSETS = Path(__file__).with_name("assets")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def load_assets(folder: Path = ASSETS) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        body = path.read_bytes()
        ctype = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        out[path.relative_to(folder).as_posix()] = {"body": body, "content_type": ctype,
                                                     "sha256": hashlib.sha256(body).hexdigest()}
    return out


class WebUi(Plugin):
    name = "web-ui"
    role = "web-ui"
    version = "0.5.0"
    description = "The operator's web page, served by transport-http"

    def __init__(self) -> None:
        super().__init__()
        self.assets = load_assets()

    health_blocks = False  # the assets loaded at start

    def health(self) -> dict[str, Any]:
        if "index.html" not in self.assets:
            return {"status": "unhealthy", "last_error": f"no index.html in {ASSETS}"}
        return {"status": "healthy", "last_error": None, "assets": len(self.assets)}

    @method("web/manifest")
    def manifest_(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        return {"entry": "index.html", "version": self.version,
                "assets": {p: {"sha256": a["sha256"], "content_type": a["content_type"], "size": len(a["body"])}
                           for p, a in self.assets.items()}}

    @method("web/asset")
    def asset(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        path = str(params.get("path") or "")
        found = self.assets.get(path)
        if found is None:
            raise RpcError(-32602, f"the web UI has no file {path!r}", {"error_code": "not_found"})
        return {"path": path, **found}


if __name__ == "__main__":
    run_plugin(WebUi)
