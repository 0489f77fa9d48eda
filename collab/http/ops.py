"""Operations: health, metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collab.errors import Unavailable
from collab.http.common import JSON, services
from collab.http.openapi import OPENAPI


async def healthz(request: Request) -> JSON:
    """200 when the database answers and updates are being saved; else 503
    naming what fails (``database``, ``persistence``) and why."""
    svc = services(request)
    committer = svc.rooms.committer
    failing: dict[str, str] = {}
    try:
        async with asyncio.timeout(2):
            async with svc.pool.acquire(timeout=2) as db:
                await db.fetchval("SELECT 1")
    except Exception as exc:
        failing["database"] = f"unreachable: {type(exc).__name__}"
    if committer.failure is not None:
        failing["persistence"] = committer.failure
    body = {
        "status": "failing" if failing else "ok",
        "rooms": len(svc.rooms.rooms),
        "pending": committer.pending,
    }
    if failing:
        first = next(iter(failing))
        error = Unavailable(f"{first}: {failing[first]}", failing=failing)
        return JSON({**error.to_json(), **body}, status_code=error.status)
    return JSON(body)


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
