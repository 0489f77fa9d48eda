"""REST: NML import/export of an annotation's skeleton, and skeleton queries."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator

from pycrdt import Doc
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from collab.auth import Access
from collab.errors import BadRequest
from collab.http.annotations import require_access
from collab.http.common import JSON, caller, path_int, read_body, services
from collab.skeleton import nml as nmlmod
from collab.skeleton.convert import export_nml, import_nml
from collab.skeleton.model import Skeleton
from collab.store import identity
from collab.sync.room import RoomKey

ZIP_MAGIC = b"PK\x03\x04"


async def import_nml_endpoint(request: Request) -> JSON:
    who = await caller(request)
    annotation_id = path_int(request, "annotation_id")
    await require_access(request, who, annotation_id, Access.WRITE)
    svc = services(request)
    body = await read_body(request, svc.settings.max_body_bytes)
    if not body:
        raise BadRequest(
            "the body is empty: send the NML file (application/xml) or a zip (application/zip)"
        )
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    is_zip = kind in ("application/zip", "application/x-zip-compressed") or body.startswith(
        ZIP_MAGIC
    )
    parsed = await asyncio.to_thread(nmlmod.read_zip if is_zip else nmlmod.read, body)
    del body
    key = RoomKey(annotation_id, "skeleton")
    results = []

    def edit(doc: Doc) -> None:
        results.append(import_nml(Skeleton(doc), parsed))

    async with svc.rooms.hold(key) as room:
        summary = {"nml": {"trees": len(parsed.trees), "nodes": parsed.node_count}}
        version = room.change(edit, who.user_id, summary)
    result = results[0]
    return JSON(
        {
            "version": version,
            "trees": result.trees,
            "nodes": result.nodes,
            "renamedTrees": result.renamed_trees,
            "renamedNodes": result.renamed_nodes,
        }
    )


async def export_nml_endpoint(request: Request) -> Response:
    who = await caller(request)
    annotation_id = path_int(request, "annotation_id")
    await require_access(request, who, annotation_id, Access.READ)
    svc = services(request)
    async with svc.pool.acquire() as db:
        info = await identity.get_annotation(db, annotation_id)
    key = RoomKey(annotation_id, "skeleton")
    async with svc.rooms.hold(key) as room:
        data = export_nml(Skeleton(room.doc), name=info["dataset"] or info["name"])
    filename = f"annotation-{annotation_id}"
    wants_zip = request.query_params.get(
        "format"
    ) == "zip" or "application/zip" in request.headers.get("accept", "")
    if wants_zip:

        def build() -> bytes:
            buf = io.BytesIO()
            with (
                zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive,
                archive.open(f"{filename}.nml", "w") as member,
            ):
                for piece in nmlmod.write(data):
                    member.write(piece.encode())
            return buf.getvalue()

        payload = await asyncio.to_thread(build)
        return Response(
            payload,
            media_type="application/zip",
            headers={"content-disposition": f'attachment; filename="{filename}.zip"'},
        )

    async def stream() -> AsyncIterator[bytes]:
        for piece in nmlmod.write(data):
            yield piece.encode()

    return StreamingResponse(
        stream(),
        media_type="application/xml",
        headers={"content-disposition": f'attachment; filename="{filename}.nml"'},
    )


routes = [
    Route("/api/annotations/{annotation_id}/nml", import_nml_endpoint, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/nml", export_nml_endpoint, methods=["GET"]),
]
