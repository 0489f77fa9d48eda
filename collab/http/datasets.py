"""REST: datasets (register, list, metadata), HTTP bricks, segment queries."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collab.auth import Principal
from collab.errors import BadRequest, CollabError, Forbidden, InvalidJSON, NotFound
from collab.http.common import JSON, cached_caller, caller, field_str, read_json, services
from collab.store import datasets as dataset_rows
from collab.store import identity, work
from collab.volume import encoding as enc
from collab.volume.agglomerates import AgglomerateFile
from collab.volume.dataset import Dataset, Layer
from collab.volume.mags import Mag, parse_mag
from collab.volume.service import Volumes

#: Who may register datasets (they choose paths under the roots).
REGISTRARS = frozenset({"admin", "manager"})
#: Largest absolute brick coordinate accepted in a path (2^31 voxels / 32).
MAX_BRICK = 1 << 26


def volumes(request: Request) -> Volumes:
    return services(request).volumes


async def dataset_reader(request: Request, name: str) -> Principal:
    """The caller, once it may read dataset ``name``.

    Users read every dataset (team scoping joins with teams); a sharing link
    reads only its annotation's dataset.
    """
    who = await caller(request)
    async with services(request).pool.acquire() as db:
        await check_dataset_access(db, who, name)
    return who


async def check_dataset_access(db: Any, who: Principal, name: str) -> None:
    """Admins read every dataset; users the open ones and those shared with a
    team of theirs; a sharing link only its annotation's dataset."""
    if who.is_link:
        assert who.link_annotation is not None
        annotation = await identity.get_annotation(db, who.link_annotation)
        if annotation.get("dataset") != name:
            raise Forbidden(f"this sharing link does not cover dataset {name!r}")
        return
    if who.is_admin or who.user_id is None:
        return
    if not await dataset_rows.exists(db, name):
        raise NotFound(f"no dataset named {name!r}")
    if not await dataset_rows.visible_to(db, name, who.user_id):
        raise Forbidden(f"dataset {name!r} is shared with other teams only")


async def check_annotation_dataset(db: Any, who: Principal, annotation_id: int) -> None:
    """Reading an annotation's voxels reads its dataset's (the fallback of
    its volume layers): the caller must be allowed that dataset too."""
    name = (await identity.get_annotation(db, annotation_id)).get("dataset")
    if isinstance(name, str):
        await check_dataset_access(db, who, name)


async def create_dataset(request: Request) -> JSON:
    who = await caller(request)
    if who.is_link or not (who.roles & REGISTRARS):
        raise Forbidden("registering datasets needs the admin or manager role")
    body = await read_json(request)
    name = field_str(body, "name", max_len=100) or ""
    url = field_str(body, "url", max_len=4096) or ""
    teams = body.get("teams", [])
    if not isinstance(teams, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in teams
    ):
        raise InvalidJSON("'teams' must be a list of team ids (empty: every user)")
    async with services(request).pool.acquire() as db:
        mine = set(await work.user_teams(db, who.user_id or 0))
        if await work.missing_teams(db, teams):
            raise NotFound(f"no team {(await work.missing_teams(db, teams))[0]}")
    if not who.is_admin and not set(teams) <= mine:
        raise Forbidden("managers share datasets with their own teams only")
    dataset = await volumes(request).register(name, url, who.user_id)
    async with services(request).pool.acquire() as db:
        await dataset_rows.set_teams(db, name, teams)
    # Open to every user between the insert and set_teams: forget any reader.
    services(request).auth_cache.invalidate()
    return JSON({**dataset.metadata(), "teams": sorted(set(teams))}, status_code=201)


async def list_datasets(request: Request) -> JSON:
    who = await caller(request)
    vol = volumes(request)
    out = []
    for name in await vol.names():
        try:
            async with services(request).pool.acquire() as db:
                await check_dataset_access(db, who, name)
        except Forbidden:
            continue
        out.append(await _metadata(vol, name))
    return JSON({"datasets": out})


async def _metadata(vol: Volumes, name: str) -> dict[str, object]:
    try:
        return (await vol.dataset(name)).metadata()
    except CollabError:
        meta = await vol.stored_metadata(name)
        if meta is None:
            raise
        return {**meta, "unavailable": True}


async def get_dataset(request: Request) -> JSON:
    name = request.path_params["dataset"]
    await dataset_reader(request, name)
    return JSON((await volumes(request).dataset(name)).metadata())


async def _layer_and_mag(request: Request) -> tuple[Dataset, Layer, Mag]:
    name = request.path_params["dataset"]
    await dataset_reader(request, name)
    dataset = await volumes(request).dataset(name)
    layer = dataset.layer(request.path_params["layer"])
    mag = parse_mag(request.path_params.get("mag") or request.query_params.get("mag") or "1")
    layer.source(mag)
    return dataset, layer, mag


def _brick_coord(request: Request) -> tuple[int, int, int]:
    out = []
    for axis in ("x", "y", "z"):
        raw = request.path_params[axis]
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"brick {axis} must be an integer, got {raw!r}") from None
        if abs(value) > MAX_BRICK:
            raise NotFound(f"brick {axis}={value} is outside every dataset")
        out.append(value)
    return out[0], out[1], out[2]


def _mapping(request: Request, layer: Layer) -> str | None:
    name = request.query_params.get("mapping") or None
    if name is not None and name not in layer.mappings:
        raise NotFound(f"layer {layer.name!r} has no mapping {name!r}")
    return name


async def get_brick(request: Request) -> Response:
    name = request.path_params["dataset"]
    await cached_caller(request, name, check_dataset_access)
    dataset = await volumes(request).dataset(name)
    layer = dataset.layer(request.path_params["layer"])
    mag = parse_mag(request.path_params["mag"])
    layer.source(mag)
    b = _brick_coord(request)
    mapping = _mapping(request, layer)
    vol = volumes(request)
    brick = await vol.brick(dataset, layer, mag, b, enc.RAW, mapping)
    if brick.payload is None:
        raise NotFound(f"brick {list(b)} at mag {mag} is outside layer {layer.name!r}")
    headers = {
        "etag": brick.etag,
        "cache-control": "private, max-age=0, must-revalidate",
        "x-brick-dtype": layer.dtype_name,
        "x-brick-shape": "32,32,32",
    }
    vol.metrics.bricks_sent.labels("raw").inc()
    if request.headers.get("if-none-match") == brick.etag:
        return Response(status_code=304, headers=headers)
    return Response(brick.payload, media_type="application/octet-stream", headers=headers)


def _position(request: Request) -> tuple[int, int, int]:
    out = []
    for axis in ("x", "y", "z"):
        raw = request.query_params.get(axis)
        if raw is None:
            raise BadRequest(f"?{axis}= is required (mag-1 voxels)")
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"?{axis} must be an integer, got {raw!r}") from None
        if value < 0 or value >= 1 << 31:
            raise BadRequest(f"?{axis}={value} is outside every dataset")
        out.append(value)
    return out[0], out[1], out[2]


async def segment_at(request: Request) -> JSON:
    _, layer, mag = await _layer_and_mag(request)
    if layer.spec.category != "segmentation":
        raise BadRequest(f"layer {layer.name!r} is not a segmentation layer")
    position = _position(request)
    mapping = _mapping(request, layer)
    value = await volumes(request).segment_at(layer, mag, position, mapping)
    return JSON({"position": list(position), "mag": str(mag), "segment": value, "mapping": mapping})


async def segment_info(request: Request) -> JSON:
    name = request.path_params["dataset"]
    await dataset_reader(request, name)
    dataset = await volumes(request).dataset(name)
    layer = dataset.layer(request.path_params["layer"])
    if layer.spec.category != "segmentation":
        raise BadRequest(f"layer {layer.name!r} is not a segmentation layer")
    raw_mag = request.query_params.get("mag")
    if raw_mag:
        mag = parse_mag(raw_mag)
        layer.source(mag)
    else:
        mag = _default_scan_mag(layer)
    raw_id = request.path_params["segment"]
    if not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 20 or int(raw_id) >= 1 << 64:
        raise BadRequest(f"segment id must be a non-negative integer, got {raw_id!r}")
    mapping = _mapping(request, layer)
    info = await volumes(request).segment_extent(layer, mag, int(raw_id), mapping)
    return JSON({**info, "mapping": mapping})


def _default_scan_mag(layer: Layer) -> Mag:
    """The finest mag of at most 2^24 voxels (the coarsest when none is that small)."""
    by_size = sorted(layer.sources.values(), key=lambda s: s.mag.volume)
    for source in by_size:
        n = 1
        for i in range(3):
            n *= source.valid_hi[i] - source.valid_lo[i]
        if n <= 1 << 24:
            return source.mag
    return by_size[-1].mag


async def get_mapping(request: Request) -> JSON:
    """A mapping as JSON pairs (small mappings only; bricks carry it otherwise)."""
    name = request.path_params["dataset"]
    await dataset_reader(request, name)
    dataset = await volumes(request).dataset(name)
    layer = dataset.layer(request.path_params["layer"])
    mapping = request.path_params["mapping"]
    if mapping not in layer.mappings:
        raise NotFound(f"layer {layer.name!r} has no mapping {mapping!r}")
    table = await layer.mapping(mapping)
    if len(table) > 1 << 20:
        raise BadRequest("the mapping has over 2^20 entries; request mapped bricks instead")
    return JSON({"name": mapping, "agglomerates": [int(v) for v in table]})


async def _agglomerate_file(request: Request) -> AgglomerateFile:
    name = request.path_params["dataset"]
    await dataset_reader(request, name)
    dataset = await volumes(request).dataset(name)
    layer = dataset.layer(request.path_params["layer"])
    return layer.agglomerate_file(request.path_params["mapping"])


async def get_agglomerates(request: Request) -> JSON:
    """What an agglomerate attachment holds: counts."""
    file = await _agglomerate_file(request)
    summary = await volumes(request).graphs.summary(file)
    return JSON(summary.to_json())


async def get_agglomerate(request: Request) -> Response:
    """One agglomerate's graph: supervoxels, edges, affinities, positions
    (rendered in a thread: a million edges take tens of milliseconds)."""
    file = await _agglomerate_file(request)
    raw = request.path_params["agglomerate"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20 or int(raw) >= 1 << 64:
        raise BadRequest(f"agglomerate id must be a non-negative integer, got {raw!r}")
    graph = await volumes(request).graphs.graph(file, int(raw))
    body = await asyncio.to_thread(lambda: orjson.dumps(graph.to_json()))
    return Response(body, media_type="application/json")


async def get_synapses(request: Request) -> JSON:
    name = request.path_params["dataset"]
    await dataset_reader(request, name)
    dataset = await volumes(request).dataset(name)
    return JSON({"synapses": await dataset.synapses()})


#: Apart from ``routes``: the app puts it first (collab/app.py).
brick_route = Route(
    "/api/datasets/{dataset}/layers/{layer}/mags/{mag}/bricks/{x}/{y}/{z}",
    get_brick,
    methods=["GET"],
)
routes = [
    Route("/api/datasets", create_dataset, methods=["POST"]),
    Route("/api/datasets", list_datasets, methods=["GET"]),
    Route("/api/datasets/{dataset}", get_dataset, methods=["GET"]),
    Route("/api/datasets/{dataset}/synapses", get_synapses, methods=["GET"]),
    Route("/api/datasets/{dataset}/layers/{layer}/segments/at", segment_at, methods=["GET"]),
    Route(
        "/api/datasets/{dataset}/layers/{layer}/segments/{segment}", segment_info, methods=["GET"]
    ),
    Route(
        "/api/datasets/{dataset}/layers/{layer}/mappings/{mapping}", get_mapping, methods=["GET"]
    ),
    Route(
        "/api/datasets/{dataset}/layers/{layer}/agglomerates/{mapping}",
        get_agglomerates,
        methods=["GET"],
    ),
    Route(
        "/api/datasets/{dataset}/layers/{layer}/agglomerates/{mapping}/{agglomerate}",
        get_agglomerate,
        methods=["GET"],
    ),
]
