"""Volume layers in WEBKNOSSOS zips: the segmentation half of ``POST
/api/annotations/{id}/nml`` (a zip) and of ``GET …/nml?format=zip``
(docs/api.md, "Volume layers in WEBKNOSSOS zips"). The skeleton half stays
in collab/http/skeleton.py, which calls these.

Import: :func:`prepare` reads the zip's volume layers in a worker process
and stores their bricks as uploads (before the skeleton is merged, so a
refused zip changes nothing); :func:`commit` then writes the layers into
the segmentation document as one version (its summary naming the
uploads), removing them should that fail; :func:`discard` removes the
uploads of an import refused in between. Uploads a server that died
left pending are settled by a later import (``uploads.sweep``).

Export: :func:`export` writes one zarr3 data zip per volume layer that
wrote voxels (threads; the database streamed through a cursor) and returns
the ``<volume>`` elements for the NML.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from pycrdt import Doc

from collab.document.log import RoomKey
from collab.errors import CollabError, Forbidden, PayloadTooLarge
from collab.http.common import Services
from collab.segmentation import exports, imports
from collab.segmentation.imports import FallbackLayer, ImportPlan, LayerPlan
from collab.segmentation.kind import SEGMENTATION
from collab.segmentation.materialise import Materialiser
from collab.segmentation.volume_nml import VolumeSpec
from collab.store import identity, materialised, uploads, work

log = logging.getLogger("collab.http.volume_layers")

#: Seconds after which a pending upload (stored, not yet named by a
#: version: its import failed, or the server died before the commit) is
#: settled by the next import's sweep. An import names its uploads within
#: its request (seconds to minutes): an hour leaves any import still
#: running on another instance alone.
PENDING_GRACE_S = 3600.0


@dataclass
class PreparedImport:
    plan: ImportPlan
    upload_ids: list[int]
    scan_ms: int
    store_ms: int


async def prepare(
    svc: Services, annotation_id: int, author: int | None, path: Path
) -> PreparedImport | None:
    """Read the volume layers of the zip at ``path`` (a worker process) and
    store their bricks; None if its NML names none. Raises, storing
    nothing, on anything wrong with them, and (Forbidden) when it names
    any and the annotation is a task's whose modes do not edit the
    segmentation."""
    settings = svc.settings
    async with svc.pool.acquire() as conn:
        modes = await work.task_modes(conn, annotation_id)
    if modes is not None and not SEGMENTATION.edited_in(modes):
        # A task's annotation changes only the documents of its task type's
        # modes: no volume layer for one that does not edit its segmentation.
        count = await svc.workers.run(imports.count_volumes, str(path), settings.max_body_bytes)
        if count:
            raise Forbidden(
                f"this task's annotation does not edit its segmentation (its task type's "
                f"modes: {', '.join(modes)}), and the zip holds {count} volume layer"
                + ("s" if count > 1 else "")
            )
        return None
    folder = await asyncio.to_thread(
        tempfile.mkdtemp, prefix="volumes-", dir=settings.data_dir / "tmp"
    )
    try:
        started = time.perf_counter()
        plan = await svc.workers.run(
            imports.scan,
            str(path),
            folder,
            settings.max_body_bytes,
            settings.max_volume_bytes,
            settings.max_volume_bricks,
        )
        if not plan.layers:
            return None
        scanned = time.perf_counter()
        async with svc.rooms.hold(RoomKey(annotation_id, SEGMENTATION.name)) as room:
            room.make_room_for(plan.doc_bytes)  # refused now, before the skeleton is merged
        await _sweep(svc)
        ids: list[int] = []
        try:
            for layer in plan.layers:
                async with svc.pool.acquire() as conn, conn.transaction():
                    upload = await uploads.create(
                        conn,
                        annotation_id,
                        author,
                        layer.spec.name,
                        layer.format,
                        layer.dtype,
                        layer.mags,
                    )
                    await uploads.add_bricks(conn, upload, _batches(layer))
                ids.append(upload)
        except BaseException:
            await discard(svc, ids)
            raise
        stored = time.perf_counter()
        return PreparedImport(
            plan,
            ids,
            round((scanned - started) * 1000),
            round((stored - scanned) * 1000),
        )
    finally:
        await asyncio.to_thread(imports.remove_folder, folder)


async def _batches(layer: LayerPlan) -> AsyncIterator[list[uploads.UploadBrick]]:
    reader = imports.read_bricks(layer)
    while True:
        batch = await asyncio.to_thread(next, reader, None)
        if batch is None:
            return
        yield batch


async def discard(svc: Services, ids: list[int]) -> None:
    """Remove stored uploads that no document names (the import was refused)."""
    if ids:
        async with svc.pool.acquire() as conn:
            await uploads.delete(conn, ids)


async def _sweep(svc: Services) -> None:
    """Settle pending uploads older than PENDING_GRACE_S, of any annotation:
    kept where a version names them, removed where none does."""
    async with svc.pool.acquire() as conn:
        kept, removed = await uploads.sweep(conn, PENDING_GRACE_S)
    if kept or removed:
        log.info("pending uploads settled", extra={"kept": kept, "removed": removed})


async def _fallbacks(
    svc: Services, annotation_id: int, names: set[str]
) -> dict[str, FallbackLayer]:
    """The annotation dataset's layers named as fallbacks: their mags and box."""
    if not names:
        return {}
    async with svc.pool.acquire() as conn:
        dataset = (await identity.get_annotation(conn, annotation_id)).get("dataset")
    if not isinstance(dataset, str):
        return {}
    try:
        opened = await svc.volumes.dataset(dataset)
    except CollabError:
        return {}  # a dataset that cannot be opened: the layers keep the zip's box
    out = {}
    for name in names:
        layer = opened.layers.get(name)
        if layer is None:
            continue
        spec = layer.spec
        out[name] = FallbackLayer(
            [str(m.mag) for m in spec.mags],
            list(spec.top_left) if spec.top_left is not None else None,
            list(spec.size) if spec.size is not None else None,
            spec.largest_segment_id,
        )
    return out


async def commit(
    svc: Services, annotation_id: int, author: int | None, prepared: PreparedImport
) -> dict[str, object]:
    """Write the prepared layers into the segmentation document as one
    version; what the answer says of them. Should that fail before the
    version is made, the uploads are removed: no document names them."""
    written: list[dict[str, object]] = []
    now = int(time.time() * 1000)
    made = False
    try:
        names = {layer.spec.fallback for layer in prepared.plan.layers if layer.spec.fallback}
        fallbacks = await _fallbacks(svc, annotation_id, names)

        def edit(doc: Doc) -> None:
            written.extend(
                imports.write_layers(
                    doc, prepared.plan, prepared.upload_ids, fallbacks, author, now
                )
            )

        async with svc.rooms.hold(RoomKey(annotation_id, SEGMENTATION.name)) as room:
            room.make_room_for(prepared.plan.doc_bytes)
            await room.quiet()  # no await from here to the change
            before = room.version
            try:
                version = room.change(
                    edit,
                    author,
                    {
                        "import": {
                            "layers": len(prepared.plan.layers),
                            "bricks": sum(layer.bricks for layer in prepared.plan.layers),
                            "segments": sum(
                                len(layer.spec.segments) for layer in prepared.plan.layers
                            ),
                            # What settles the uploads as named (uploads.sweep).
                            "uploads": prepared.upload_ids,
                        }
                    },
                )
            finally:
                made = room.version != before
    except BaseException:
        if not made:
            await discard(svc, prepared.upload_ids)
        raise
    log.info(
        "volume layers imported",
        extra={
            "annotation": annotation_id,
            "layers": len(written),
            "bricks": sum(layer.bricks for layer in prepared.plan.layers),
            "scan_ms": prepared.scan_ms,
            "store_ms": prepared.store_ms,
        },
    )
    return {"version": version, "layers": written}


@dataclass
class ExportedVolumes:
    """The ``<volume>`` elements and the data zips (name in the zip, file)."""

    specs: list[VolumeSpec]
    files: list[tuple[str, Path]]


async def export(
    svc: Services,
    materialiser: Materialiser,
    annotation_id: int,
    folder: Path,
    voxel_size: tuple[float, float, float],
) -> ExportedVolumes:
    """One zarr3 data zip per volume layer that wrote voxels, in ``folder``."""
    key = RoomKey(annotation_id, SEGMENTATION.name)
    await svc.rooms.committer.flush()  # every version so far stored, then materialised
    version = await materialiser.catch_up(annotation_id)
    async with svc.rooms.hold(key) as room:
        layers = exports.layers_of(room.doc)
    if not layers:
        return ExportedVolumes([], [])
    counts = []
    async with svc.pool.acquire() as conn:
        for layer in layers:
            counts.append(await materialised.written_count(conn, key, layer.id))
    limit = svc.settings.max_volume_bricks
    if sum(counts) > limit:
        raise PayloadTooLarge(
            f"the volume layers hold {sum(counts)} bricks, over the export limit of {limit} "
            "(COLLAB_MAX_VOLUME_BRICKS)"
        )
    files: list[tuple[str, Path]] = []
    for layer, count in zip(layers, counts, strict=True):
        if not count:
            continue
        name = exports.data_zip_name(layer.spec.id, layer.spec.name)
        path = folder / name
        data = await asyncio.to_thread(exports.DataZip, path, layer)
        try:
            async with svc.pool.acquire() as conn, conn.transaction(readonly=True):
                async for batch in materialised.iter_written(conn, key, layer.id, version):
                    await asyncio.to_thread(data.add, batch)
            await asyncio.to_thread(data.close, voxel_size)
        except BaseException:
            await asyncio.to_thread(data.abandon)
            raise
        layer.spec.location = name
        layer.spec.format = "zarr3"
        files.append((name, path))
    return ExportedVolumes([layer.spec for layer in layers], files)
