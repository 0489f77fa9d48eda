"""Proofreading over HTTP: merge and split agglomerates of an annotation's
volume layer, and read its editable mapping (docs/api.md, "Proofreading";
collab/proofreading/service.py says how a request is sequenced)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import orjson
from pycrdt import Map
from starlette.requests import Request
from starlette.routing import Route

from collab.auth import Access
from collab.document.log import RoomKey
from collab.errors import (
    BadRequest,
    Forbidden,
    InvalidJSON,
    NotFound,
    Unavailable,
    Unprocessable,
)
from collab.http.annotations import authorised
from collab.http.common import JSON, query_int, read_json, services
from collab.http.datasets import check_annotation_dataset
from collab.proofreading import connectome as connectomes
from collab.proofreading import graph
from collab.proofreading.mapping import MAX_SEEDS, EditableMapping
from collab.proofreading.service import Proofreading
from collab.segmentation.kind import SEGMENTATION
from collab.segmentation.materialise import READ_WAIT_SECONDS, Materialiser
from collab.segmentation.voxels import unavailable_on_failure
from collab.store import counters, identity, work

#: Supervoxel ids one lookup may name.
MAX_LOOKUP = 65_536
#: How long a request waits for its op to reach the mapping.
FOLLOW_SECONDS = 30.0
#: The annotation counter that numbers proofreading ops (their ``seq``).
SEQ_COUNTER = "proofreading"
#: Edges one split may cut (the op keeps them, in the document).
MAX_CUT_EDGES = 20_000


def _segment(value: Any, where: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**64:
        raise InvalidJSON(f"{where}: a supervoxel id is an integer in [1, 2^64)")
    return value


def _segments(body: dict[str, Any], name: str, limit: int) -> list[int]:
    value = body.get(name)
    if not isinstance(value, list) or not 1 <= len(value) <= limit:
        raise InvalidJSON(f"{name!r}: a list of 1 to {limit} supervoxel ids")
    out = [_segment(v, f"{name}[{i}]") for i, v in enumerate(value)]
    if len(set(out)) != len(out):
        raise InvalidJSON(f"{name!r}: a supervoxel id is named twice")
    return out


def _positions(body: dict[str, Any]) -> list[list[int]] | None:
    """Where the proofreader clicked (mag-1 voxels), kept with the op."""
    value = body.get("positions")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_SEEDS:
        raise InvalidJSON(f"'positions': a list of at most {MAX_SEEDS} [x, y, z]")
    out = []
    for p in value:
        if not (
            isinstance(p, list)
            and len(p) == 3
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 2**31 for c in p)
        ):
            raise InvalidJSON("'positions': each is [x, y, z], integers in [0, 2^31)")
        out.append(p)
    return out


async def _writer(request: Request) -> tuple[int | None, int, str]:
    """The user, the annotation and the layer of a proofreading request."""
    who, annotation_id = await authorised(request, Access.WRITE)
    svc = services(request)
    async with svc.pool.acquire() as db:
        await check_annotation_dataset(db, who, annotation_id)
        modes = await work.task_modes(db, annotation_id)
    if modes is not None and "proofreading" not in modes:
        raise Forbidden("this task's type has no proofreading mode")
    # A sharing link with write access writes without an author, as it
    # does in the documents.
    return who.user_id, annotation_id, request.path_params["layer"]


async def _seq(request: Request, annotation_id: int) -> int:
    """The next proofreading op's seq (the annotation's counter: unique,
    increasing; a refused request leaves a gap)."""
    async with services(request).pool.acquire() as db:
        return await counters.take(db, annotation_id, SEQ_COUNTER, 1, 1)


async def _write(
    request: Request,
    annotation_id: int,
    layer: str,
    author: int | None,
    op: dict[str, Any],
    summary: dict[str, Any],
) -> int:
    """Write the op (applied ahead to the layer's mapping) as a server
    change of the segmentation; wait until the mapping has followed it.
    Its version."""
    svc = services(request)
    proofreading: Proofreading = request.app.state.proofreading
    key = f"pr-{op['seq']}"
    try:
        # The server's record is what the mapping applies (a client may
        # rewrite the document's entry, not this).
        await proofreading.record(annotation_id, op["seq"], op)
        async with svc.rooms.hold(RoomKey(annotation_id, SEGMENTATION.name)) as room:
            room.make_room_for(len(orjson.dumps(op)) + 256)  # the document's cap (413)
            await room.quiet()  # no await from here to the change
            version = room.change(
                lambda doc: doc.get("ops", type=Map).__setitem__(key, op), author, summary
            )
        if version is None:  # pragma: no cover - a new key always changes the document
            raise Unavailable("the change was not taken; try again")
    except BaseException:
        proofreading.forget(annotation_id, layer)  # it holds the op, the log does not
        raise
    await svc.rooms.committer.flush()
    materialiser: Materialiser = request.app.state.materialiser
    try:
        # This annotation's catch-up, here: not behind other annotations'
        # in the follower's queue.
        with unavailable_on_failure(annotation_id, "following a proofreading op"):
            await asyncio.wait_for(materialiser.catch_up(annotation_id), FOLLOW_SECONDS)
    except TimeoutError:
        materialiser.nudge(annotation_id)
        raise Unavailable(
            "the op is stored but the mapping has not followed it yet; it will"
        ) from None
    return version


async def _current(request: Request, annotation_id: int, layer: str, fn: Any) -> Any:
    """Run ``fn(mapping)`` in a thread on the layer's mapping at the newest
    materialised version; its result and that version."""
    materialiser: Materialiser = request.app.state.materialiser
    proofreading: Proofreading = request.app.state.proofreading
    await services(request).rooms.committer.flush()

    async def read() -> Any:
        async with materialiser.document(annotation_id) as (version, doc):
            mapping = await proofreading.mapping(annotation_id, layer, doc)
            return await asyncio.to_thread(fn, mapping), version

    try:
        with unavailable_on_failure(annotation_id, "the editable mapping"):
            return await asyncio.wait_for(read(), READ_WAIT_SECONDS)
    except TimeoutError:
        materialiser.nudge(annotation_id)
        raise Unavailable(
            "the segmentation is still being written (a long backlog); try again shortly"
        ) from None


async def merge(request: Request) -> JSON:
    """Merge the agglomerates of supervoxels ``a`` and ``b`` (an edge a–b)."""
    author, annotation_id, layer = await _writer(request)
    body = await read_json(request, 64 * 1024)
    a, b = _segment(body.get("a"), "'a'"), _segment(body.get("b"), "'b'")
    positions = _positions(body)
    proofreading: Proofreading = request.app.state.proofreading
    async with proofreading.sequencing(annotation_id):
        seq = await _seq(request, annotation_id)
        op: dict[str, Any] = {"kind": "merge", "layer": layer, "author": author,
                              "time": int(time.time() * 1000), "seq": seq, "a": a, "b": b}  # fmt: skip
        if positions is not None:
            op["positions"] = positions

        def ahead(mapping: EditableMapping) -> tuple[int, int]:
            # Checked, then applied to the mapping now: the log follows, and
            # viewers are told once the op is durable (collab/proofreading/service.py).
            ga, gb = mapping.check_merge(a, b)
            mapping.apply_ahead(op)
            return ga, gb

        (ga, gb), _ = await _current(request, annotation_id, layer, ahead)
        version = await _write(
            request, annotation_id, layer, author, op, {"merge": {"layer": layer, "a": a, "b": b}}
        )
    return JSON(
        {"op": f"pr-{seq}", "version": version, "agglomerate": ga, "merged": gb}, status_code=201
    )


async def split(request: Request) -> JSON:
    """Split an agglomerate by the minimum cut between ``sources`` and
    ``sinks`` (supervoxel ids of it), weighted by the edges' affinities."""
    author, annotation_id, layer = await _writer(request)
    body = await read_json(request, 64 * 1024)
    sources = _segments(body, "sources", MAX_SEEDS)
    sinks = _segments(body, "sinks", MAX_SEEDS)
    positions = _positions(body)
    proofreading: Proofreading = request.app.state.proofreading
    async with proofreading.sequencing(annotation_id):
        seq = await _seq(request, annotation_id)
        op: dict[str, Any] = {"kind": "split", "layer": layer, "author": author,
                              "time": int(time.time() * 1000), "seq": seq, "sources": sources,
                              "sinks": sinks}  # fmt: skip
        if positions is not None:
            op["positions"] = positions

        def ahead(mapping: EditableMapping) -> tuple[int, list[list[int]], list[int]]:
            agg = mapping.check_split(sources, sinks)
            whole = mapping.graph(agg)
            at = graph.min_cut(
                whole.nodes,
                whole.edges,
                whole.weights,
                np.array(sources, dtype=np.uint64),
                np.array(sinks, dtype=np.uint64),
                whole.local(),
            )
            if len(at) > MAX_CUT_EDGES:
                raise Unprocessable(
                    f"the cut between these seeds has {len(at)} edges (at most "
                    f"{MAX_CUT_EDGES}): choose seeds nearer the boundary"
                )
            op["cut"] = whole.edges[at].tolist()
            mapping.apply_ahead(op)
            return agg, op["cut"], mapping.agglomerates_of([sources[0], sinks[0]])

        (agg, cut, parts), _ = await _current(request, annotation_id, layer, ahead)
        version = await _write(
            request,
            annotation_id,
            layer,
            author,
            op,
            {"split": {"layer": layer, "agglomerate": agg, "cut": len(cut)}},
        )
    return JSON(
        {"op": f"pr-{seq}", "version": version, "agglomerate": agg, "cut": cut,
         "agglomerates": parts},
        status_code=201,
    )  # fmt: skip


async def lookup(request: Request) -> JSON:
    """The agglomerate of each supervoxel named, in the layer's mapping now."""
    who, annotation_id = await authorised(request, Access.READ)
    async with services(request).pool.acquire() as db:
        await check_annotation_dataset(db, who, annotation_id)
    layer = request.path_params["layer"]
    body = await read_json(request, 2 * 1024 * 1024)
    value = body.get("segments")
    if not isinstance(value, list) or len(value) > MAX_LOOKUP:
        raise InvalidJSON(f"'segments': a list of at most {MAX_LOOKUP} supervoxel ids")
    ids = [_segment(v, f"segments[{i}]") for i, v in enumerate(value)]
    found, version = await _current(request, annotation_id, layer, lambda m: m.agglomerates_of(ids))
    return JSON({"segments": ids, "agglomerates": found, "version": version})


async def agglomerate(request: Request) -> JSON:
    """An agglomerate of the layer's mapping now: its supervoxels and edges."""
    who, annotation_id = await authorised(request, Access.READ)
    async with services(request).pool.acquire() as db:
        await check_annotation_dataset(db, who, annotation_id)
    layer = request.path_params["layer"]
    raw = request.path_params["agglomerate"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20 or int(raw) >= 2**64:
        raise InvalidJSON(f"an agglomerate id is an integer in [0, 2^64), got {raw[:30]!r}")
    agg = int(raw)

    def answer(mapping: EditableMapping) -> dict[str, Any]:
        whole = mapping.graph(agg)
        if not len(whole.nodes):
            raise NotFound(f"layer {layer!r} has no agglomerate {agg}")
        return {
            "agglomerate": agg,
            "supervoxels": whole.nodes.tolist(),
            "edges": whole.edges.tolist(),
            "affinities": [round(w, 6) for w in whole.weights.tolist()],
        }

    found, version = await _current(request, annotation_id, layer, answer)
    found["version"] = version
    return JSON(found)


async def connectome(request: Request) -> JSON:
    """The synapses of an agglomerate (``?agglomerate=``, or the one holding
    ``?segment=``) with their partners, in the layer's mapping now."""
    who, annotation_id = await authorised(request, Access.READ)
    svc = services(request)
    async with svc.pool.acquire() as db:
        await check_annotation_dataset(db, who, annotation_id)
        annotation = await identity.get_annotation(db, annotation_id)
    layer = request.path_params["layer"]
    segment = query_int(request, "segment", None, 1, 2**63 - 1)
    agg = query_int(request, "agglomerate", None, 1, 2**63 - 1)
    if (segment is None) == (agg is None):
        raise BadRequest("name one of ?segment= or ?agglomerate=")
    offset = query_int(request, "offset", 0, 0) or 0
    limit = query_int(request, "limit", connectomes.LISTED, 0, connectomes.MAX_LISTED)
    assert limit is not None
    name = annotation.get("dataset")
    if not isinstance(name, str):
        raise NotFound("the annotation has no dataset, so no synapses")
    proofreading: Proofreading = request.app.state.proofreading
    table = await proofreading.synapses(name, svc.volumes)

    def answer(mapping: EditableMapping) -> dict[str, Any]:
        which = agg if agg is not None else mapping.agglomerate_of(segment or 0)
        whole = mapping.graph(which) if which else None
        if whole is None or not len(whole.nodes):
            raise NotFound(f"layer {layer!r} has no such agglomerate")
        out = connectomes.connectome(table, whole.nodes, mapping.agglomerates_of, offset, limit)
        out["agglomerate"] = which
        out["supervoxels"] = len(whole.nodes)
        return out

    found, version = await _current(request, annotation_id, layer, answer)
    found["version"] = version
    return JSON(found)


_BASE = "/api/annotations/{annotation_id}/volume/{layer}"
routes = [
    Route(f"{_BASE}/merge", merge, methods=["POST"]),
    Route(f"{_BASE}/split", split, methods=["POST"]),
    Route(f"{_BASE}/agglomerates", lookup, methods=["POST"]),
    Route(f"{_BASE}/agglomerates/{{agglomerate}}", agglomerate, methods=["GET"]),
    Route(f"{_BASE}/connectome", connectome, methods=["GET"]),
]
