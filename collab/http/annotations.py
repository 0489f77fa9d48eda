"""REST: annotations, grants, sharing links, history (versions, restore, revert)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from collab import history
from collab.auth import Access, Principal
from collab.document.content import to_json
from collab.document.kind import DocumentKind
from collab.document.log import RoomKey
from collab.errors import Forbidden, InvalidJSON, Unprocessable
from collab.http.common import (
    JSON,
    caller,
    field_int,
    field_str,
    field_time,
    path_int,
    query_int,
    read_json,
    services,
)
from collab.http.datasets import check_dataset_access
from collab.store import datasets as dataset_rows
from collab.store import identity, oplog, work


async def require_access(
    request: Request, who: Principal, annotation_id: int, need: Access
) -> Access:
    async with services(request).pool.acquire() as db:
        access = await identity.access_to(db, who, annotation_id)
    if access < need:
        raise Forbidden(f"{need.name.lower()} access to annotation {annotation_id} required")
    return access


async def authorised(request: Request, need: Access) -> tuple[Principal, int]:
    """The caller and the path's annotation id, once the caller holds ``need`` on it."""
    who = await caller(request)
    annotation_id = path_int(request, "annotation_id")
    await require_access(request, who, annotation_id, need)
    return who, annotation_id


def _doc(request: Request, body: dict[str, Any] | None = None) -> DocumentKind:
    """The ``doc`` of the body or the query; the first kind served (the skeleton) if neither."""
    kinds = services(request).kinds
    name = (body or {}).get("doc") or request.query_params.get("doc") or kinds.default.name
    if not isinstance(name, str):
        raise InvalidJSON("'doc' must be a string")
    return kinds.parse(name)


async def create_annotation(request: Request) -> JSON:
    who = await caller(request)
    if who.is_link or who.user_id is None:
        raise Forbidden("a sharing link cannot create annotations")
    body = await read_json(request)
    name = field_str(body, "name")
    dataset = field_str(body, "dataset", required=False, max_len=100)
    async with services(request).pool.acquire() as db:
        if dataset is not None and not await dataset_rows.exists(db, dataset):
            raise Unprocessable(f"no registered dataset named {dataset!r}", field="dataset")
        if dataset is not None:
            await check_dataset_access(db, who, dataset)  # 403 for another team's dataset
        annotation_id = await identity.create_annotation(db, name or "", dataset, who.user_id)
    return JSON({"id": annotation_id}, status_code=201)


async def list_annotations(request: Request) -> JSON:
    who = await caller(request)
    if who.is_link:
        raise Forbidden("a sharing link cannot list annotations")
    limit = query_int(request, "limit", 50, 1, 500) or 50
    before = query_int(request, "before", None, 1, 2**62)
    async with services(request).pool.acquire() as db:
        items = await identity.list_annotations(db, who, limit, before)
    return JSON({"annotations": items, "next": items[-1]["id"] if len(items) == limit else None})


async def get_annotation(request: Request) -> JSON:
    who = await caller(request)
    annotation_id = path_int(request, "annotation_id")
    access = await require_access(request, who, annotation_id, Access.READ)
    svc = services(request)
    async with svc.pool.acquire() as db:
        info = await identity.get_annotation(db, annotation_id)
        task = await work.task_of_annotation(db, annotation_id)
        heads = {}
        for name in svc.kinds:
            key = RoomKey(annotation_id, name)
            room = svc.rooms.rooms.get(key)
            heads[name] = room.version if room else await oplog.head(db, key)
    return JSON({**info, "access": access.name.lower(), "versions": heads, "task": task})


async def add_grant(request: Request) -> JSON:
    who, annotation_id = await authorised(request, Access.OWNER)
    body = await read_json(request)
    user_id = field_int(body, "user", minimum=1)
    role = body.get("role")
    if role not in ("editor", "viewer"):
        raise InvalidJSON("'role' must be 'editor' or 'viewer'")
    async with services(request).pool.acquire() as db:
        await identity.grant(db, annotation_id, user_id or 0, role, who.user_id)
    return JSON({"annotation": annotation_id, "user": user_id, "role": role}, status_code=201)


async def remove_grant(request: Request) -> JSON:
    who = await caller(request)
    annotation_id = path_int(request, "annotation_id")
    user_id = path_int(request, "user_id")
    await require_access(request, who, annotation_id, Access.OWNER)
    async with services(request).pool.acquire() as db:
        await identity.revoke_grant(db, annotation_id, user_id)
    services(request).auth_cache.invalidate()
    return JSON({"annotation": annotation_id, "user": user_id, "removed": True})


async def create_link(request: Request) -> JSON:
    who = await caller(request)
    annotation_id = path_int(request, "annotation_id")
    body = await read_json(request)
    access = body.get("access")
    if access not in ("read", "write"):
        raise InvalidJSON("'access' must be 'read' or 'write'")
    # Sharing for reading needs write access; sharing for writing needs ownership.
    await require_access(
        request, who, annotation_id, Access.OWNER if access == "write" else Access.WRITE
    )
    expires = field_time(body, "expires")
    async with services(request).pool.acquire() as db:
        token_id, token = await identity.create_token(
            db,
            user_id=who.user_id,
            annotation_id=annotation_id,
            access=access,
            expires=expires,
            label="sharing link",
        )
    return JSON(
        {
            "id": token_id,
            "token": token,
            "access": access,
            "annotation": annotation_id,
            "expires": expires.isoformat() if expires else None,
        },
        status_code=201,
    )


async def list_versions(request: Request) -> JSON:
    _who, annotation_id = await authorised(request, Access.READ)
    kind = _doc(request)
    limit = query_int(request, "limit", 100, 1, 1000) or 100
    before = query_int(request, "before", None, 1)
    svc = services(request)
    await svc.rooms.committer.flush()
    async with svc.pool.acquire() as db:
        items = await oplog.versions(db, RoomKey(annotation_id, kind.name), before, limit)
    return JSON(
        {
            "doc": kind.name,
            "versions": [v.to_json() for v in items],
            "next": items[-1].version if len(items) == limit and items[-1].version > 1 else None,
        }
    )


async def get_version(request: Request) -> JSON:
    _who, annotation_id = await authorised(request, Access.READ)
    kind = _doc(request)
    version = path_int(request, "version")
    svc = services(request)
    await svc.rooms.committer.flush()
    doc = await history.doc_at(svc.pool, svc.kinds, RoomKey(annotation_id, kind.name), version)
    return JSON({"doc": kind.name, "version": version, "content": to_json(doc, kind)})


async def restore(request: Request) -> JSON:
    who, annotation_id = await authorised(request, Access.WRITE)
    body = await read_json(request)
    kind = _doc(request, body)
    version = field_int(body, "version", minimum=0) or 0
    svc = services(request)
    new = await history.restore(
        svc.pool, svc.rooms, RoomKey(annotation_id, kind.name), version, who.user_id
    )
    return JSON({"doc": kind.name, "version": new, "restored": version})


async def revert(request: Request) -> JSON:
    who, annotation_id = await authorised(request, Access.WRITE)
    body = await read_json(request)
    kind = _doc(request, body)
    version = field_int(body, "version", minimum=1) or 1
    svc = services(request)
    result = await history.revert(
        svc.pool, svc.rooms, RoomKey(annotation_id, kind.name), version, who.user_id
    )
    return JSON({"doc": kind.name, "reverted_version": version, **result.to_json()})


routes = [
    Route("/api/annotations", create_annotation, methods=["POST"]),
    Route("/api/annotations", list_annotations, methods=["GET"]),
    Route("/api/annotations/{annotation_id}", get_annotation, methods=["GET"]),
    Route("/api/annotations/{annotation_id}/grants", add_grant, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/grants/{user_id}", remove_grant, methods=["DELETE"]),
    Route("/api/annotations/{annotation_id}/links", create_link, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/versions", list_versions, methods=["GET"]),
    Route("/api/annotations/{annotation_id}/versions/{version}", get_version, methods=["GET"]),
    Route("/api/annotations/{annotation_id}/restore", restore, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/revert", revert, methods=["POST"]),
]
