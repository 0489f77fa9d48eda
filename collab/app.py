"""The Starlette application and its lifespan (which owns every resource)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import WebSocketRoute

from collab.auth_cache import AuthCache
from collab.config import Settings
from collab.document.kind import DocumentKind, Kinds
from collab.errors import CollabError
from collab.gc_policy import collector_policy
from collab.http import annotations as annotation_routes
from collab.http import datasets as dataset_routes
from collab.http import ops, users, web
from collab.http import proofreading as proofreading_routes
from collab.http import segmentation as segmentation_routes
from collab.http import skeleton as skeleton_routes
from collab.http import work as work_routes
from collab.http.access_log import AccessLog
from collab.http.common import JSON, Services, error_response
from collab.http.data_socket import data_endpoint, volume_endpoint
from collab.http.replay_socket import replay_endpoint
from collab.http.sync_socket import sync_endpoint
from collab.http.throttle import Throttle
from collab.http.to_owner import TIMEOUT, ToOwner
from collab.limits import Limits
from collab.metrics import Metrics
from collab.proofreading.base import BaseOf
from collab.proofreading.service import Proofreading
from collab.segmentation.fallback import DatasetFallback
from collab.segmentation.kind import SEGMENTATION
from collab.segmentation.materialise import Materialiser
from collab.segmentation.voxels import VoxelReads
from collab.skeleton.kind import SKELETON
from collab.store import identity
from collab.store.database import Database
from collab.store.embedded import EmbeddedPostgres
from collab.store.migrations import migrate
from collab.sync.registry import RoomRegistry
from collab.volume.service import Volumes
from collab.workers import Workers

log = logging.getLogger("collab.app")

#: The document kinds an annotation has, each its package's record
#: (collab/document/kind.py); the first is the default of ``?doc=``.
KINDS: tuple[DocumentKind, ...] = (SKELETON, SEGMENTATION)


async def _collab_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CollabError)
    if exc.status >= 500:
        log.error("request failed", extra={"path": request.url.path, "error": exc.message})
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSON({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return JSON(
        {"error": {"code": "internal", "message": "internal server error"}}, status_code=500
    )


def create_app(
    settings: Settings,
    on_ready: Callable[[Services], Awaitable[None]] | None = None,
    kinds: Sequence[DocumentKind] = KINDS,
) -> Starlette:
    """``kinds``: the documents served (``/sync/{annotation}/{doc}``), handed
    to the room registry; tests add kinds of their own here."""
    served = Kinds(kinds)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedded: EmbeddedPostgres | None = None
        url = settings.database_url
        if url is None:
            embedded = EmbeddedPostgres(settings.postgres_dir)
            url = await asyncio.to_thread(embedded.start)
        try:
            pool = await Database.connect(url, max_size=settings.pool_max)
            try:
                async with pool.acquire() as conn:
                    applied = await migrate(conn)
                    generated = await identity.ensure_admin(conn, settings.admin_token)
                if applied:
                    log.info("migrations applied", extra={"numbers": applied})
                if generated:
                    print(f"collab: admin token (shown once): {generated}", flush=True)
                metrics = Metrics()
                async with (
                    httpx.AsyncClient(timeout=TIMEOUT, trust_env=False) as owner_client,
                    collector_policy(settings.gc_young_threshold, settings.gc_full_every_seconds),
                    Workers(settings.workers) as workers,
                    RoomRegistry(pool, settings, metrics, workers, served) as rooms,
                ):
                    app.state.owner_client = owner_client  # REST writes to their owner
                    volumes = Volumes(settings, pool, metrics)
                    try:
                        # The segmentation's voxels follow its log
                        # (collab/segmentation/materialise.py).
                        async with Materialiser(
                            pool, DatasetFallback(pool, volumes)
                        ) as materialiser:
                            rooms.listen_durable(
                                SEGMENTATION.name,
                                lambda key, _v: materialiser.nudge(key.annotation_id),
                            )
                            app.state.materialiser = materialiser
                            # Editable mappings follow the same log
                            # (collab/proofreading/service.py).
                            proofreading = Proofreading(pool, BaseOf(pool, volumes))
                            materialiser.listen_ops(proofreading.follow)
                            app.state.proofreading = proofreading
                            # Readers' way in: its failures are Unavailable.
                            app.state.voxels = VoxelReads(materialiser)
                            app.state.services = Services(
                                settings,
                                pool,
                                rooms,
                                metrics,
                                workers,
                                volumes,
                                Limits(settings.limits),
                                served,
                                AuthCache(settings.auth_cache_seconds),
                            )
                            log.info(
                                "server ready",
                                extra={"database": "embedded" if embedded else "external"},
                            )
                            if on_ready is not None:
                                await on_ready(app.state.services)
                            yield
                    finally:
                        volumes.close()
                log.info("rooms flushed")
            finally:
                await pool.close()
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    routes = [
        # First: the route a client calls thousands of times a minute is
        # matched before the others are tried (Starlette tries them in order).
        dataset_routes.brick_route,
        *ops.routes,
        *users.routes,
        *annotation_routes.routes,
        *skeleton_routes.routes,
        *segmentation_routes.routes,
        *proofreading_routes.routes,
        *dataset_routes.routes,
        *work_routes.routes,
        WebSocketRoute("/sync/{annotation_id}/{doc}", sync_endpoint),
        WebSocketRoute("/data/{dataset}/{layer}", data_endpoint),
        WebSocketRoute("/volume/{annotation_id}/{layer}", volume_endpoint),
        WebSocketRoute("/replay/{annotation_id}/{doc}", replay_endpoint),
        *web.routes,
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(AccessLog), Middleware(Throttle), Middleware(ToOwner)],
        lifespan=lifespan,
        exception_handlers={
            CollabError: _collab_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
