"""Operations: health, metrics, the OpenAPI document."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collab.errors import Unavailable
from collab.http.common import JSON, services
from collab.http.openapi import OPENAPI


async def healthz(request: Request) -> JSON:
    svc = services(request)
    try:
        async with svc.pool.acquire(timeout=2) as db:
            await db.fetchval("SELECT 1")
    except Exception:
        raise Unavailable("database unreachable") from None
    return JSON(
        {"status": "ok", "rooms": len(svc.rooms.rooms), "pending": svc.rooms.committer.pending}
    )


async def metrics(request: Request) -> Response:
    svc = services(request)
    return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def openapi(request: Request) -> JSON:
    return JSON(OPENAPI)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/api/openapi.json", openapi, methods=["GET"]),
]
