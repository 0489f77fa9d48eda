"""REST: NML import/export of an annotation's skeleton, and skeleton queries."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import BinaryIO

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from collab.auth import Access
from collab.document.log import RoomKey
from collab.errors import BadRequest, PayloadTooLarge
from collab.gc_policy import settle
from collab.history import doc_at
from collab.http import volume_layers
from collab.http.annotations import authorised
from collab.http.common import JSON, Services, query_int, services
from collab.http.datasets import check_annotation_dataset
from collab.segmentation.volume_nml import write_volumes
from collab.skeleton import jobs, queries
from collab.skeleton.convert import Existing, ExportSource, ImportResult
from collab.skeleton.kind import LARGE_ROOM, SKELETON, live_index
from collab.skeleton.model import Skeleton
from collab.store import identity
from collab.sync.room import Room

log = logging.getLogger("collab.http.skeleton")

ZIP_MAGIC = b"PK\x03\x04"
PIECE_POLL_S = 0.02  # how often a running import job's folder is looked at


SPOOL_BATCH = 8 << 20  # bytes of a request body gathered before one write


async def _spool(request: Request, limit: int, folder: Path) -> tuple[Path, bytes, int]:
    """Stream a request body into a private temporary file (for a worker
    process to read) as it arrives, never holding all of it; return the
    file, the body's first bytes and its size. Writes happen in a thread,
    ``SPOOL_BATCH`` bytes at a time."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body over the {limit}-byte limit")

    def create() -> tuple[Path, BinaryIO]:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=".upload", dir=folder)
        return Path(name), os.fdopen(fd, "wb")

    path, f = await asyncio.to_thread(create)
    head = b""
    size = 0
    batch: list[bytes] = []
    pending = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body over the {limit}-byte limit")
            if len(head) < 4:
                head = (head + chunk)[:4]
            batch.append(chunk)
            pending += len(chunk)
            if pending >= SPOOL_BATCH:
                data, batch, pending = b"".join(batch), [], 0
                await asyncio.to_thread(f.write, data)
        if batch:
            await asyncio.to_thread(f.write, b"".join(batch))
        await asyncio.to_thread(f.close)
    except BaseException:
        await asyncio.to_thread(f.close)
        await asyncio.to_thread(path.unlink, True)
        raise
    return path, head, size


async def _import_in_pieces(
    svc: Services, room: Room, author: int | None, path: Path, is_zip: bool, existing: Existing
) -> tuple[ImportResult, int | None, int, int, float]:
    """Run the import job and apply its pieces as they are written; return
    its counts, the new version, the number of pieces, their bytes and the
    loop time spent applying them. A failure after some pieces were applied still records
    those (marked partial): the document and the log never disagree."""
    folder = Path(
        await asyncio.to_thread(
            tempfile.mkdtemp, prefix="import-", dir=svc.settings.data_dir / "tmp"
        )
    )
    job = asyncio.ensure_future(
        svc.workers.run(
            jobs.build_import,
            str(path),
            is_zip,
            existing,
            str(folder),
            svc.settings.max_body_bytes,
        )
    )
    applied = size = 0
    applied_s = 0.0
    try:
        while not (job.done() and job.exception() is not None):
            piece = await asyncio.to_thread(jobs.take_piece, str(folder), applied)
            if piece is None:
                if job.done():
                    # Written before the job returned? Else all were taken.
                    piece = await asyncio.to_thread(jobs.take_piece, str(folder), applied)
                    if piece is None:
                        break
                else:
                    await asyncio.wait({job}, timeout=PIECE_POLL_S)
                    continue
            update, delta = piece
            if not applied:
                await room.quiet()  # a revert may hold the room's writes; no await after
            t0 = time.perf_counter()
            if not applied:
                room.begin_bulk()
            room.apply_piece(update, delta)
            applied_s += time.perf_counter() - t0
            applied += 1
            size += len(update)
            del piece, update, delta
            await asyncio.sleep(0)  # let other rooms run between pieces
        result, count = await job  # raises the job's error (invalid NML: nothing applied)
        if count != applied:
            raise RuntimeError(f"import wrote {count} pieces, {applied} applied")
    except BaseException:
        if applied:
            room.end_bulk(author, {"nml": {"partial": True, "pieces": applied}})
        raise
    finally:
        if not job.done():
            job.cancel()
        await asyncio.to_thread(shutil.rmtree, folder, True)
    version = None
    if applied:
        t0 = time.perf_counter()
        version = room.end_bulk(author, {"nml": {"trees": result.trees, "nodes": result.nodes}})
        applied_s += time.perf_counter() - t0
    return result, version, applied, size, applied_s * 1000


async def import_nml_endpoint(request: Request) -> JSON:
    who, annotation_id = await authorised(request, Access.WRITE)
    svc = services(request)
    received = time.perf_counter()
    path, head, size = await _spool(
        request, svc.settings.max_body_bytes, svc.settings.data_dir / "tmp"
    )
    received_ms = round((time.perf_counter() - received) * 1000)
    key = RoomKey(annotation_id, SKELETON.name)
    try:
        if not size:
            raise BadRequest(
                "the body is empty: send the NML file (application/xml) or a zip (application/zip)"
            )
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        is_zip = kind in ("application/zip", "application/x-zip-compressed") or head.startswith(
            ZIP_MAGIC
        )
        async with svc.rooms.hold(key) as room, room.import_lock:
            # The body's size stands for what the import adds (an NML's
            # update is smaller than its XML; a zip's may pass the cap by
            # what compression saved, once).
            room.make_room_for(size)
            index = live_index(room)
            known = index.tree_of.keys() if index is not None else None
            existing = Existing.of(Skeleton(room.doc), known)
            # A zip's volume layers are read and their voxels stored first
            # (refused: nothing changes); the segmentation document names
            # them once the skeleton is merged (collab/http/volume_layers.py).
            volumes = (
                await volume_layers.prepare(svc, annotation_id, who.user_id, path)
                if is_zip
                else None
            )
            # Parse and build in a worker process; the event loop applies
            # each piece of the update as it comes (while the worker builds
            # the next), and the pieces land as one version.
            started = time.perf_counter()
            try:
                result, version, pieces, size, applied_ms = await _import_in_pieces(
                    svc, room, who.user_id, path, is_zip, existing
                )
            except BaseException:
                if volumes is not None:
                    await volume_layers.discard(svc, volumes.upload_ids)
                raise
            segmentation = (
                await volume_layers.commit(svc, annotation_id, who.user_id, volumes)
                if volumes is not None
                else None
            )
            if result.nodes >= LARGE_ROOM:
                settle()
            log.info(
                "nml imported",
                extra={
                    "annotation": annotation_id,
                    "nodes": result.nodes,
                    "bytes": size,
                    "pieces": pieces,
                    "receive_ms": received_ms,
                    "ms": round((time.perf_counter() - started) * 1000),
                    "apply_ms": round(applied_ms),
                },
            )
    finally:
        await asyncio.to_thread(path.unlink, True)
    answer: dict[str, object] = {
        "version": version,
        "trees": result.trees,
        "nodes": result.nodes,
        "renamedTrees": result.renamed_trees,
        "renamedNodes": result.renamed_nodes,
    }
    if segmentation is not None:
        answer["segmentation"] = segmentation
    return JSON(answer)


async def export_nml_endpoint(request: Request) -> Response:
    who, annotation_id = await authorised(request, Access.READ)
    svc = services(request)
    wants_zip = request.query_params.get(
        "format"
    ) == "zip" or "application/zip" in request.headers.get("accept", "")
    async with svc.pool.acquire() as db:
        info = await identity.get_annotation(db, annotation_id)
        if wants_zip:
            # The zip carries the volume layers' voxels: read like the
            # bricks, only by a caller allowed the annotation's dataset.
            await check_annotation_dataset(db, who, annotation_id)
    key = RoomKey(annotation_id, SKELETON.name)
    filename = f"annotation-{annotation_id}"
    folder = svc.settings.data_dir / "tmp"
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(suffix=".nml", dir=folder)
    os.close(fd)
    out = Path(name)
    try:
        # Held while the worker writes: a large room is not unloaded (and
        # reloaded) under a long export.
        async with svc.rooms.hold(key) as room:
            # Gathered in one go from the repair index's columns (a few tenths
            # of a second at a million nodes); the worker assembles and writes.
            index = live_index(room)
            sk = Skeleton(room.doc)
            voxel_size = _voxel_size(sk.meta.get("voxelSize"))
            src = ExportSource.of_index(sk, index) if index is not None else ExportSource.of_doc(sk)
            await svc.workers.run(jobs.write_export, src, str(out), info["dataset"] or info["name"])
        del src
        if wants_zip:
            # With a zarr3 data zip per volume layer and their <volume>
            # elements in the NML, as WEBKNOSSOS downloads are.
            volumes_dir = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=folder))
            try:
                volumes = await volume_layers.export(
                    svc, request.app.state.materialiser, annotation_id, volumes_dir, voxel_size
                )

                def build() -> Path:
                    if volumes.specs:
                        _append_volumes(out, "".join(write_volumes(volumes.specs)))
                    zipped = out.with_suffix(".zip")
                    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
                        archive.write(out, f"{filename}.nml")
                        for name, data in volumes.files:
                            archive.write(data, name, compress_type=zipfile.ZIP_STORED)
                    out.unlink()
                    return zipped

                target = await asyncio.to_thread(build)
            finally:
                await asyncio.to_thread(shutil.rmtree, volumes_dir, True)
            media, download = "application/zip", f"{filename}.zip"
        else:
            target, media, download = out, "application/xml", f"{filename}.nml"
    except BaseException:
        await asyncio.to_thread(out.unlink, True)
        raise
    return FileResponse(
        target,
        media_type=media,
        filename=download,
        background=BackgroundTask(target.unlink, True),
    )


def _voxel_size(value: object) -> tuple[float, float, float]:
    """The skeleton's ``voxelSize`` (the data zips' scale), else 1 nm."""
    to_py = getattr(value, "to_py", None)
    value = to_py() if callable(to_py) else value
    if (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return (float(value[0]), float(value[1]), float(value[2]))
    return (1.0, 1.0, 1.0)


_CLOSING = b"</things>\n"


def _append_volumes(nml: Path, volumes: str) -> None:
    """Put ``<volume>`` elements before the closing ``</things>`` of an NML
    that :func:`collab.skeleton.nml.write` wrote (it ends with that line)."""
    with nml.open("r+b") as f:
        f.seek(-len(_CLOSING), os.SEEK_END)
        if f.read() != _CLOSING:
            raise RuntimeError("the exported NML does not end with </things>")
        f.seek(-len(_CLOSING), os.SEEK_END)
        f.truncate()
        f.write(volumes.encode("utf-8"))
        f.write(_CLOSING)


async def _skeleton_read(request: Request) -> tuple[Skeleton, int]:
    _who, annotation_id = await authorised(request, Access.READ)
    room = await services(request).rooms.get(RoomKey(annotation_id, SKELETON.name))
    return Skeleton(room.doc), room.version


async def skeleton_summary(request: Request) -> JSON:
    sk, version = await _skeleton_read(request)
    return JSON({"version": version, **queries.summary(sk)})


async def skeleton_lengths(request: Request) -> JSON:
    sk, version = await _skeleton_read(request)
    return JSON({"version": version, **queries.path_lengths(sk)})


def _floats(raw: str | None, name: str, count: int) -> list[float]:
    if raw is None:
        raise BadRequest(f"?{name} is required")
    try:
        values = [float(v) for v in raw.split(",")]
    except ValueError:
        raise BadRequest(f"?{name} must be {count} comma-separated numbers") from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise BadRequest(f"?{name} must be {count} comma-separated finite numbers")
    return values


async def skeleton_nodes_in_box(request: Request) -> JSON:
    sk, version = await _skeleton_read(request)
    box = _floats(request.query_params.get("box"), "box", 6)
    if any(s < 0 for s in box[3:]):
        raise BadRequest("?box size must not be negative")
    limit = query_int(request, "limit", 10_000, 1, 100_000) or 10_000
    return JSON({"version": version, **queries.nodes_in_box(sk, box[:3], box[3:], limit)})


async def skeleton_tree_of_node(request: Request) -> JSON:
    sk, version = await _skeleton_read(request)
    return JSON({"version": version, **queries.tree_of(sk, request.path_params["node_id"])})


async def skeleton_path(request: Request) -> JSON:
    sk, version = await _skeleton_read(request)
    source, target = request.query_params.get("from"), request.query_params.get("to")
    if not source or not target:
        raise BadRequest("?from and ?to (node ids) are required")
    return JSON({"version": version, **queries.shortest_path(sk, source, target)})


async def skeleton_diff(request: Request) -> JSON:
    _who, annotation_id = await authorised(request, Access.READ)
    svc = services(request)
    key = RoomKey(annotation_id, SKELETON.name)
    first = query_int(request, "from", None, 0)
    if first is None:
        raise BadRequest("?from (a version) is required")
    last = query_int(request, "to", None, 0)
    await svc.rooms.committer.flush()
    old = await doc_at(svc.pool, svc.kinds, key, first)
    if last is None:
        room = await svc.rooms.get(key)
        last = room.version
        new = Skeleton(room.doc)
    else:
        new = Skeleton(await doc_at(svc.pool, svc.kinds, key, last))
    return JSON({"from": first, "to": last, **queries.diff(Skeleton(old), new)})


routes = [
    Route("/api/annotations/{annotation_id}/skeleton", skeleton_summary, methods=["GET"]),
    Route("/api/annotations/{annotation_id}/skeleton/lengths", skeleton_lengths, methods=["GET"]),
    Route(
        "/api/annotations/{annotation_id}/skeleton/nodes", skeleton_nodes_in_box, methods=["GET"]
    ),
    Route(
        "/api/annotations/{annotation_id}/skeleton/nodes/{node_id}/tree",
        skeleton_tree_of_node,
        methods=["GET"],
    ),
    Route("/api/annotations/{annotation_id}/skeleton/path", skeleton_path, methods=["GET"]),
    Route("/api/annotations/{annotation_id}/skeleton/diff", skeleton_diff, methods=["GET"]),
    Route("/api/annotations/{annotation_id}/nml", import_nml_endpoint, methods=["POST"]),
    Route("/api/annotations/{annotation_id}/nml", export_nml_endpoint, methods=["GET"]),
]
