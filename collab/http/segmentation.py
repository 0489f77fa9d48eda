"""REST of the segmentation document: blocks of new segment ids
(docs/api.md, "Segment ids")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from collab.auth import Access
from collab.document.log import RoomKey
from collab.errors import InvalidJSON, Unprocessable
from collab.http.annotations import authorised
from collab.http.common import JSON, field_int, field_str, read_json, services
from collab.segmentation import ids
from collab.segmentation.kind import SEGMENTATION
from collab.store import counters, identity


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


routes = [
    Route("/api/annotations/{annotation_id}/segment-ids", take_segment_ids, methods=["POST"]),
]
