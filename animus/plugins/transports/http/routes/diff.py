"""``GET /api/workflows/{id}/diff``: a run's branch against its base, file by file.

Read-only: git runs in the daemon's project (``transports.diff``), bounded
(files listed, bytes of patch). With the changes come the worktree record,
and the delivery: the commit, the merge result and the pull request.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from animus.plugins.transports.diff import workflow_diff
from animus.plugins.transports.http.routing import RouteContext
from animus.plugins.transports.respond import Json

__all__ = ["routes"]


def routes(ctx: RouteContext) -> list[Route]:
    async def diff(request: Request) -> Response:
        return Json(await workflow_diff(ctx.link, request.path_params["id"]))

    return [ctx.api("/api/workflows/{id}/diff", diff)]
