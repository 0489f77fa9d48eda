"""REST of the segmentation document: blocks of new segment ids and the
bricks of its volume layers at any version (docs/api.md, "Segmentation")."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collab.auth import Access
from collab.document.log import RoomKey
from collab.errors import BadRequest, Forbidden, InvalidJSON, NotFound, Unprocessable
from collab.http.annotations import authorised
from collab.http.common import JSON, field_int, field_str, query_int, read_json, services
from collab.http.datasets import check_annotation_dataset
from collab.segmentation import ids
from collab.segmentation.kind import SEGMENTATION
from collab.segmentation.materialise import MAX_SCAN_BRICKS, layer_info
from collab.segmentation.voxels import VoxelReads
from collab.store import counters, identity, work
from collab.volume import encoding as enc
from collab.volume.mags import Mag, parse_mag


async def take_segment_ids(request: Request) -> JSON:
    who, annotation_id = await authorised(request, Access.WRITE)
    body = await read_json(request)
    layer = field_str(body, "layer", max_len=200)
    assert layer is not None
    count = field_int(body, "count", minimum=1)
    assert count is not None
    if count > ids.MAX_BLOCK:
        raise InvalidJSON(f"'count' must be between 1 and {ids.MAX_BLOCK}")
    svc = services(request)
    async with svc.pool.acquire() as db:
        # A task's annotation changes only the documents of its task type's modes.
        modes = await work.task_modes(db, annotation_id)
    if modes is not None and not SEGMENTATION.edited_in(modes):
        raise Forbidden("this task's annotation does not edit its segmentation")
    async with svc.rooms.hold(RoomKey(annotation_id, SEGMENTATION.name)) as room:
        fallback = ids.layer_entry(room.doc, layer).get("fallback")
        largest = await _fallback_largest(request, annotation_id, fallback)
        lowest = ids.floor(room.doc, layer, largest)
        if lowest + count - 1 > ids.dtype_max(room.doc, layer):
            raise Unprocessable(f"layer {layer!r} has no {count} more segment ids")
        async with svc.pool.acquire() as db:
            first = await counters.take(db, annotation_id, ids.counter_name(layer), lowest, count)
        if first + count - 1 > ids.dtype_max(room.doc, layer):
            raise Unprocessable(f"layer {layer!r} has no {count} more segment ids")
        await room.quiet()  # no await from here to the change
        version = room.change(
            lambda doc: ids.record_block(doc, layer, first, count, who.user_id),
            who.user_id,
            {"segmentIds": {"layer": layer, "first": first, "count": count}},
        )
    return JSON(
        {"layer": layer, "first": first, "count": count, "version": version}, status_code=201
    )


async def _fallback_largest(request: Request, annotation_id: int, fallback: object) -> int | None:
    """The largest segment id of the annotation's dataset layer ``fallback``."""
    if not isinstance(fallback, str):
        return None
    svc = services(request)
    async with svc.pool.acquire() as db:
        annotation = await identity.get_annotation(db, annotation_id)
    name = annotation.get("dataset")
    if not isinstance(name, str):
        return None
    dataset = await svc.volumes.dataset(name)
    layer = dataset.layers.get(fallback)
    return layer.spec.largest_segment_id if layer is not None else None


async def get_volume_brick(request: Request) -> Response:
    """A brick of the annotation's volume layer, as of ``?version=`` (default:
    the newest): what its ops wrote over its fallback."""
    who, annotation_id = await authorised(request, Access.READ)
    svc = services(request)
    async with svc.pool.acquire() as db:
        await check_annotation_dataset(db, who, annotation_id)
    layer = request.path_params["layer"]
    mag = parse_mag(request.path_params["mag"])
    brick = (_coord(request, "x"), _coord(request, "y"), _coord(request, "z"))
    version = query_int(request, "version", None, 0)
    voxels: VoxelReads = request.app.state.voxels
    await svc.rooms.committer.flush()  # "newest" is every version accepted so far
    done = await voxels.newest(annotation_id)
    if version is not None and version > done:
        raise NotFound(f"the segmentation has no version {version}; newest is {done}")
    key = RoomKey(annotation_id, SEGMENTATION.name)
    async with svc.rooms.hold(key) as room:
        info = layer_info(room.doc, layer)
    if info is None:
        raise NotFound(f"the segmentation document has no volume layer {layer!r}")
    brick_voxels = await voxels.read_brick(annotation_id, layer, info, str(mag), brick, version)
    raw = enc.to_raw(brick_voxels)
    headers = {
        "x-brick-dtype": info.dtype.name,
        "x-brick-shape": "32,32,32",
        "x-version": str(version if version is not None else done),
        "cache-control": "no-cache",
    }
    return Response(raw, media_type="application/octet-stream", headers=headers)


async def get_segment_stats(request: Request) -> JSON:
    """Voxel count and bounding box of a segment of the annotation's volume
    layer (what its ops wrote, over its fallback), as of ``?version=``."""
    who, annotation_id = await authorised(request, Access.READ)
    svc = services(request)
    async with svc.pool.acquire() as db:
        await check_annotation_dataset(db, who, annotation_id)
        annotation = await identity.get_annotation(db, annotation_id)
    layer = request.path_params["layer"]
    raw_id = request.path_params["segment"]
    if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 20 or int(raw_id) >= 1 << 64:
        raise BadRequest(f"segment id must be a non-negative integer, got {raw_id[:30]!r}")
    version = query_int(request, "version", None, 0)
    voxels: VoxelReads = request.app.state.voxels
    await svc.rooms.committer.flush()
    done = await voxels.newest(annotation_id)
    if version is not None and version > done:
        raise NotFound(f"the segmentation has no version {version}; newest is {done}")
    async with svc.rooms.hold(RoomKey(annotation_id, SEGMENTATION.name)) as room:
        info = layer_info(room.doc, layer)
    if info is None:
        raise NotFound(f"the segmentation document has no volume layer {layer[:100]!r}")
    # Where the annotation wrote nothing, the fallback's bricks count.
    source_layer = None
    dataset_name = annotation.get("dataset")
    if info.fallback is not None and isinstance(dataset_name, str):
        dataset = await svc.volumes.dataset(dataset_name)
        source_layer = dataset.layers.get(info.fallback)

    def fallback_extent(mag: Mag) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """The fallback's bricks at ``mag`` (low and high inclusive), if any."""
        if source_layer is None or mag not in source_layer.sources:
            return None
        source = source_layer.sources[mag]
        lo = tuple(source.valid_lo[a] // 32 for a in range(3))
        hi = tuple((source.valid_hi[a] - 1) // 32 for a in range(3))
        return lo, hi

    def count(extent: tuple[tuple[int, ...], tuple[int, ...]] | None) -> int:
        # Counted, never listed: an extent may hold millions of bricks.
        return 0 if extent is None else math.prod(extent[1][a] - extent[0][a] + 1 for a in range(3))

    raw_mag = request.query_params.get("mag")
    mags = info.mags or [parse_mag("1")]
    if raw_mag:
        mag = parse_mag(raw_mag)
        if mag not in mags:
            raise BadRequest(f"layer {layer!r} keeps no mag {raw_mag!r}")
    else:  # the finest mag whose fallback extent can be scanned
        mag = next((m for m in mags if count(fallback_extent(m)) <= MAX_SCAN_BRICKS), mags[-1])
    segment = int(raw_id)
    extent = fallback_extent(mag)
    if count(extent) > MAX_SCAN_BRICKS:
        raise BadRequest(
            f"mag {mag} of layer {layer!r} spans more than {MAX_SCAN_BRICKS} bricks; "
            "ask at a coarser mag"
        )
    fallback = [] if extent is None else _bricks_between(extent[0], extent[1])
    found, low, high = await voxels.segment_stats(
        annotation_id, layer, info, mag, segment, version, fallback
    )
    if not found:
        raise NotFound(f"segment {segment} does not occur in layer {layer!r} at mag {mag}")
    return JSON(
        {
            "segment": segment,
            "mag": str(mag),
            "voxelCount": found,
            "boundingBox": {"topLeft": low, "size": [high[a] - low[a] + 1 for a in range(3)]},
            "version": version if version is not None else done,
        }
    )


def _coord(request: Request, axis: str) -> int:
    raw = request.path_params[axis]
    if not (raw.isascii() and raw.lstrip("-").isdigit()) or abs(int(raw)) > 1 << 26:
        raise BadRequest(f"brick {axis} must be an integer within ±2^26, got {raw[:20]!r}")
    return int(raw)


routes = [
    Route(
        "/api/annotations/{annotation_id}/volume/{layer}/segments/{segment}",
        get_segment_stats,
        methods=["GET"],
    ),
    Route("/api/annotations/{annotation_id}/segment-ids", take_segment_ids, methods=["POST"]),
    Route(
        "/api/annotations/{annotation_id}/volume/{layer}/{mag}/{x}/{y}/{z}",
        get_volume_brick,
        methods=["GET"],
    ),
]


def _bricks_between(lo: tuple[int, ...], hi: tuple[int, ...]) -> list[tuple[int, int, int]]:
    return [
        (x, y, z)
        for x in range(lo[0], hi[0] + 1)
        for y in range(lo[1], hi[1] + 1)
        for z in range(lo[2], hi[2] + 1)
    ]
