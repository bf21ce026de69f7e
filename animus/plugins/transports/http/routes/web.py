"""Routes for browsers and senders: the web UI's files, the contract, webhooks.

    GET  /, /ui/{path}           the web UI, from the web-ui plugin (``ui``), with an ETag
    GET  /openapi.json           this transport's contract
    POST /webhooks/{trigger_id}  to the webhook trigger plugin (no token: an HMAC signature instead)
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from animus.errors import NotFound, Unavailable
from animus.plugins.transports.http.routing import RouteContext, guard
from animus.plugins.transports.http.ui import UI_HEADERS, UiAssets
from animus.plugins.transports.respond import Json

__all__ = ["routes"]

_WEBHOOK_HEADERS = ("content-type", "x-hub-signature-256", "x-hub-signature", "x-github-event",
                    "x-github-delivery", "user-agent", "webhook-id", "webhook-timestamp", "webhook-signature",
                    "webhook-event")


def routes(ctx: RouteContext) -> list[Route]:
    ui = UiAssets(ctx.link, str(ctx.config.get("ui_plugin") or "web-ui"))
    webhook_plugin = str(ctx.config.get("webhook_plugin") or "webhook")

    async def webhook(request: Request) -> Response:
        body = await request.body()  # BodyLimit stops the read past webhook_max_bytes: 413
        headers = {k: request.headers[k] for k in _WEBHOOK_HEADERS if k in request.headers}
        try:
            reply = await ctx.link.call("plugin/call", {"name": webhook_plugin, "method": "webhook/deliver", "params": {
                "trigger_id": request.path_params["trigger_id"], "headers": headers, "body": body}, "timeout": 10},
                timeout=20)
        except NotFound:
            raise Unavailable(f"the {webhook_plugin} trigger plugin is not installed",
                              fix="animus plugin install-defaults --include-triggers, then restart the daemon") from None
        if "error" in reply:
            err = reply["error"] or {}
            code = (err.get("data") or {}).get("error_code") or "invalid_input"
            status = {"unauthorized": 401, "not_found": 404, "invalid_input": 400}.get(code, 503)
            return Json({"error": {"code": code, "message": str(err.get("message", "refused"))}}, status_code=status)
        result = reply.get("result") or {}
        return Json(result, status_code=200 if result.get("duplicate") else 202)  # a replay starts nothing

    async def index(request: Request) -> Response:
        return await _asset(request, await ui.entry())

    async def asset(request: Request) -> Response:
        return await _asset(request, request.path_params["path"])

    async def _asset(request: Request, path: str) -> Response:
        found = await ui.get(path)
        etag = f'"{found.sha256[:32]}"'
        headers = {"etag": etag, "cache-control": "no-cache", **UI_HEADERS}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(found.body, media_type=found.content_type, headers=headers)

    async def openapi_doc(request: Request) -> Response:
        return Json(ctx.openapi)

    async def favicon(request: Request) -> Response:
        return RedirectResponse("/ui/favicon.svg", status_code=308)

    return [
        ctx.api("/webhooks/{trigger_id}", webhook, "POST"),
        Route("/openapi.json", openapi_doc),
        Route("/favicon.ico", favicon),
        Route("/", guard(index)),
        Route("/ui/{path:path}", guard(asset)),
    ]
