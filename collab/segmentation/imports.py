"""Volume layers of an uploaded WEBKNOSSOS zip, imported into the
segmentation document (docs/schema.md, "segmentation", "Imported volume
layers").

The voxels are not ops a client drew: they are kept as they came, and the
log only names them. An import goes in four steps (the endpoint,
collab/http/volume_layers.py, drives them):

1. :func:`scan`, in a worker process: the NML's ``<volume>`` elements
   (collab/segmentation/volume_nml.py) and each layer's data zip
   (collab/segmentation/volume_zip.py) are read whole, within the limits,
   into one file of bricks per layer, and the document change the import
   will make is measured (:func:`document_bytes`). Anything wrong refuses
   the whole upload before anything is stored.
2. The endpoint stores each layer's bricks as an *upload*
   (collab/store/uploads.py: ``volume_uploads``, ``volume_upload_bricks``),
   immutable from then on, pending until a version names it.
3. Once the skeleton is merged, one change of the segmentation document
   (:func:`write_layers`, through ``room.change``): per volume layer a new
   ``layers`` entry, its ``segments`` and ``groups``, and, where it has
   voxels, one ``import`` op naming its upload. Clients cannot write that
   op kind (collab/segmentation/ops.py refuses it).
4. The materialiser meets the op like any other (:func:`apply`): the
   upload's bricks become the layer's bricks at the op's version, at every
   mag the zip carried; the layer's other mags follow by downsampling. A
   replay of the log gives the same voxels.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from pycrdt import Doc, Map

from collab.document.log import RoomKey
from collab.errors import CollabError, InvalidVolume, PayloadTooLarge, Unprocessable
from collab.segmentation import paint
from collab.segmentation.ids import DTYPE_MAX
from collab.segmentation.ops import MAX_MAG_STEP, SERVER_KIND
from collab.segmentation.volume_nml import VolumeSpec, read_volumes
from collab.segmentation.volume_zip import BRICK, Budget, LayerReader, open_zip
from collab.store import uploads
from collab.store.database import Database
from collab.volume import encoding as enc
from collab.volume.mags import Mag, parse_mag

log = logging.getLogger("collab.segmentation")

KIND = SERVER_KIND
#: A brick record of a layer's brick file: mag index, x, y, z, bytes that follow.
_RECORD = struct.Struct("<Biiii")
#: Bricks handed to the database in one COPY.
STORE_BATCH = 512
#: Finer bricks read at a time to compute a mag the upload lacks: at most
#: 64 MiB of uint32 voxels (128 MiB of uint64) in memory, however large
#: the import; their coarser bricks are written before the next batch.
FOLLOW_BATCH = 256

Brick = tuple[int, int, int]


@dataclass
class LayerPlan:
    """One volume layer of the upload, as scanned."""

    spec: VolumeSpec
    #: "zarr3", "wkw", or None: the layer has no voxels (no data zip, or an empty one).
    format: str | None = None
    dtype: str = "uint32"
    #: The mags the zip carries, finest first.
    mags: list[str] = field(default_factory=list)
    #: The bounding box the zip's properties give (mag-1 voxels), if any.
    box: tuple[list[int], list[int]] | None = None
    bricks: int = 0
    #: The mag-1 box of the finest mag's bricks (low, high), if any.
    extent: tuple[list[int], list[int]] | None = None
    #: The largest voxel value seen.
    largest: int = 0
    #: The file of its bricks (records of :data:`_RECORD` and their bytes).
    file: str | None = None


@dataclass
class ImportPlan:
    layers: list[LayerPlan]
    #: Bytes the import's version adds to the segmentation document, as
    #: measured (:func:`document_bytes`): what the document cap is checked
    #: against before anything is stored.
    doc_bytes: int = 0


def _nml_member(archive: zipfile.ZipFile) -> zipfile.ZipInfo | None:
    names = [
        i
        for i in archive.infolist()
        if i.filename.lower().endswith(".nml") and "/" not in i.filename.strip("/")
    ]
    return names[0] if len(names) == 1 else None


def scan(path: str, folder: str, max_nml_bytes: int, max_bytes: int, max_bricks: int) -> ImportPlan:
    """Read the volume layers of the WEBKNOSSOS zip at ``path``: each layer's
    bricks go to a file in ``folder``. Runs in a worker process. A zip the
    skeleton reader will refuse (no single NML, damaged) gives no layers:
    its error is the skeleton reader's to tell."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception:
        return ImportPlan([])
    with archive:
        info = _nml_member(archive)
        if info is None or info.file_size > max_nml_bytes or info.flag_bits & 0x1:
            return ImportPlan([])
        try:
            with archive.open(info) as stream:
                specs = read_volumes(stream)
        except InvalidVolume:
            raise
        except Exception:
            return ImportPlan([])  # damaged: the skeleton reader says so
        budget = Budget(max_bytes, max_bricks)
        members = {i.filename: i for i in archive.infolist()}
        layers = []
        for spec in specs:
            try:
                layers.append(_scan_layer(archive, members, spec, folder, budget))
            except CollabError:
                raise
            except Exception as exc:  # whatever else bytes from outside make our readers raise
                raise InvalidVolume(
                    f"volume layer {spec.name[:60]!r} (id {spec.id}) cannot be read: "
                    f"{type(exc).__name__}: {str(exc)[:200]}"
                ) from None
        plan = ImportPlan(layers)
        plan.doc_bytes = document_bytes(plan)
        return plan


#: Upload ids standing in for the real ones while an import's change is
#: measured: as long as any the database gives.
_MEASURED_ID = 10**15
#: Bytes allowed per layer beyond the measured change: the fallback layer's
#: mags and box, which only the endpoint knows, and a renamed layer's suffix.
MEASURE_SLACK = 1024


def document_bytes(plan: ImportPlan) -> int:
    """The bytes the import's change adds to the segmentation document:
    :func:`write_layers` into a scratch document, measured as the update
    it encodes (segments with their names and metadata included, however
    many), plus :data:`MEASURE_SLACK` per layer."""
    doc: Doc = Doc()
    ids = [_MEASURED_ID + i for i in range(len(plan.layers))]
    with doc.transaction():
        write_layers(doc, plan, ids, {}, _MEASURED_ID, 2**41)
    return len(doc.get_update()) + MEASURE_SLACK * len(plan.layers)


def count_volumes(path: str, max_nml_bytes: int) -> int:
    """How many volume layers the NML of the WEBKNOSSOS zip at ``path``
    names (its voxels unread): what a task that may not change its
    segmentation refuses. Runs in a worker process; 0 where :func:`scan`
    would find none."""
    try:
        archive = zipfile.ZipFile(path)
    except Exception:
        return 0
    with archive:
        info = _nml_member(archive)
        if info is None or info.file_size > max_nml_bytes or info.flag_bits & 0x1:
            return 0
        try:
            with archive.open(info) as stream:
                return len(read_volumes(stream))
        except InvalidVolume:
            raise
        except Exception:
            return 0  # damaged: the skeleton reader says so


def _scan_layer(
    archive: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    spec: VolumeSpec,
    folder: str,
    budget: Budget,
) -> LayerPlan:
    where = f"volume layer {spec.name[:60]!r} (id {spec.id})"
    plan = LayerPlan(spec)
    if spec.location is None:
        return _check_segments(plan, where)
    info = members.get(spec.location)
    if info is None or info.is_dir():
        raise InvalidVolume(f"{where}: its data zip {spec.location[:100]!r} is not in the zip")
    budget.inflate(info.file_size, f"{where}: {spec.location[:100]}")
    fd, inner = tempfile.mkstemp(suffix=".zip", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_member(archive, info, out, info.file_size, where)
        with (
            open(inner, "rb") as stream,
            open_zip(stream, where, budget.max_members) as data_zip,
        ):
            reader = LayerReader(data_zip, where, budget)
            data = reader.data
            if data is None:
                return _check_segments(plan, where)
            plan.format = data.format
            plan.dtype = data.dtype.name
            plan.mags = [str(m) for m in data.mags]
            if data.top_left is not None and data.size is not None:
                plan.box = (list(data.top_left), list(data.size))
            index = {m: i for i, m in enumerate(data.mags)}
            fd2, bricks_path = tempfile.mkstemp(suffix=".bricks", dir=folder)
            plan.file = bricks_path
            low = [2**62] * 3
            high = [0] * 3
            with os.fdopen(fd2, "wb") as f:
                for mag, b, voxels in reader.bricks():
                    data_bytes = enc.compress(enc.to_raw(np.ascontiguousarray(voxels)))
                    f.write(_RECORD.pack(index[mag], *b, len(data_bytes)))
                    f.write(data_bytes)
                    plan.bricks += 1
                    plan.largest = max(plan.largest, int(voxels.max()))
                    if mag != data.mags[0]:
                        continue  # the extent is the finest mag's (coarser bricks overhang it)
                    for a in range(3):
                        low[a] = min(low[a], b[a] * BRICK * mag[a])
                        high[a] = max(high[a], (b[a] + 1) * BRICK * mag[a])
            if plan.bricks:
                plan.extent = (low, high)
    finally:
        Path(inner).unlink(missing_ok=True)
    return _check_segments(plan, where)


def _check_segments(plan: LayerPlan, where: str) -> LayerPlan:
    top = max((s.id for s in plan.spec.segments), default=0)
    if plan.format is None and top > DTYPE_MAX["uint32"]:
        plan.dtype = "uint64"
    if top > DTYPE_MAX[plan.dtype]:
        raise InvalidVolume(f"{where}: segment {top} does not fit its {plan.dtype} voxels")
    return plan


def _copy_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: IO[bytes], limit: int, where: str
) -> None:
    if info.flag_bits & 0x1:
        raise InvalidVolume(f"{where}: {info.filename} is encrypted")
    copied = 0
    try:
        with archive.open(info) as stream:
            while chunk := stream.read(1 << 20):
                copied += len(chunk)
                if copied > limit:
                    raise PayloadTooLarge(f"{where}: {info.filename} inflates past {limit} bytes")
                out.write(chunk)
    except (InvalidVolume, PayloadTooLarge):
        raise
    except Exception as exc:  # zipfile and zlib on damaged bytes
        raise InvalidVolume(
            f"{where}: {info.filename} is damaged ({type(exc).__name__}: {exc})"
        ) from None


def read_bricks(plan: LayerPlan, batch: int = STORE_BATCH) -> Iterator[list[uploads.UploadBrick]]:
    """A layer's bricks from its file, in batches (for the database)."""
    if plan.file is None:
        return
    with open(plan.file, "rb") as f:
        out: list[uploads.UploadBrick] = []
        while head := f.read(_RECORD.size):
            mag, x, y, z, size = _RECORD.unpack(head)
            out.append((plan.mags[mag], (x, y, z), f.read(size)))
            if len(out) >= batch:
                yield out
                out = []
        if out:
            yield out


def discard(plan: ImportPlan) -> None:
    for layer in plan.layers:
        if layer.file is not None:
            Path(layer.file).unlink(missing_ok=True)


def remove_folder(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


# -- the document ------------------------------------------------------------------


@dataclass(frozen=True)
class FallbackLayer:
    """What the annotation's dataset says of a layer's fallback."""

    mags: list[str]
    top_left: list[int] | None
    size: list[int] | None
    largest_segment_id: int | None


def layer_id(upload_id: int) -> str:
    return f"upload-{upload_id}"


def write_layers(
    doc: Doc,
    plan: ImportPlan,
    upload_ids: list[int],
    fallbacks: dict[str, FallbackLayer],
    author: int | None,
    now: int,
) -> list[dict[str, Any]]:
    """Write the plan's layers into the segmentation document (inside the
    caller's transaction): each a new ``layers`` entry, its segments and
    groups, and, where it has voxels, an ``import`` op naming its upload.
    Returns what was written, per layer, for the answer and the version's
    summary."""
    layers = doc.get("layers", type=Map)
    segments = doc.get("segments", type=Map)
    groups = doc.get("groups", type=Map)
    ops = doc.get("ops", type=Map)
    taken = {
        str(entry.get("name"))
        for entry in layers.values()
        if isinstance(entry, Map) and entry.get("name") is not None
    }
    written = []
    for layer, upload in zip(plan.layers, upload_ids, strict=True):
        spec = layer.spec
        lid = layer_id(upload)
        name = spec.name
        n = 2
        while name in taken:
            name = f"{spec.name}_{n}"
            n += 1
        taken.add(name)
        fallback = fallbacks.get(spec.fallback) if spec.fallback else None
        mags = {parse_mag(m) for m in layer.mags}
        if fallback is not None:
            mags |= {parse_mag(m) for m in fallback.mags}
        if not mags:
            mags = {Mag(1, 1, 1)}
        box = _box(layer, fallback)
        largest = max(
            layer.largest,
            spec.largest_segment_id or 0,
            max((s.id for s in spec.segments), default=0),
        )
        largest = min(largest, DTYPE_MAX[layer.dtype])
        layers[lid] = Map(
            {
                "name": name,
                "dtype": layer.dtype,
                "fallback": spec.fallback,
                "mags": [str(m) for m in sorted(mags, key=lambda m: (m.volume, m))],
                "boundingBox": box,
                "largestSegmentId": largest,
                "activeMapping": None,
            }
        )
        group_ids = {g.id: f"{lid}-g{g.id}" for g in spec.groups}
        for g in spec.groups:
            groups[group_ids[g.id]] = Map(
                {
                    "layer": lid,
                    "name": g.name,
                    "parentId": group_ids.get(g.parent_id) if g.parent_id is not None else None,
                    "isExpanded": g.is_expanded,
                }
            )
        for s in spec.segments:
            segments[f"{lid}/{s.id}"] = {
                "name": s.name,
                "color": s.color,
                "anchor": s.anchor,
                "groupId": group_ids.get(s.group_id) if s.group_id is not None else None,
                "metadata": s.metadata,
                "isVisible": s.is_visible,
                "time": s.created if s.created is not None else now,
            }
        if layer.bricks:
            ops[lid] = {
                "kind": KIND,
                "layer": lid,
                "upload": upload,
                "author": author,
                "time": now,
                "mag": layer.mags[0],
                "mags": layer.mags,
            }
        written.append(
            {
                "id": lid,
                "name": name,
                "format": layer.format,
                "dtype": layer.dtype,
                "bricks": layer.bricks,
                "segments": len(spec.segments),
                "groups": len(spec.groups),
            }
        )
    return written


def _box(layer: LayerPlan, fallback: FallbackLayer | None) -> dict[str, list[int]] | None:
    """The layer's bounding box: the fallback's, else the zip's, widened to
    hold every imported brick; None (no bounds) where neither is known and
    nothing was imported."""
    boxes = []
    if fallback is not None and fallback.top_left is not None and fallback.size is not None:
        boxes.append(
            (fallback.top_left, [fallback.top_left[a] + fallback.size[a] for a in range(3)])
        )
    elif layer.box is not None:
        top, size = layer.box
        boxes.append((top, [top[a] + size[a] for a in range(3)]))
    if layer.extent is not None:
        boxes.append(layer.extent)
    if not boxes:
        return None
    low = [min(b[0][a] for b in boxes) for a in range(3)]
    high = [max(b[1][a] for b in boxes) for a in range(3)]
    return {"topLeft": low, "size": [high[a] - low[a] for a in range(3)]}


# -- materialisation ---------------------------------------------------------------

#: The materialiser's reader of bricks as they are now: (layer, mag, info,
#: bricks, changed, version) → voxels.
Current = Callable[..., Awaitable[dict[Brick, np.ndarray]]]


def _integer(value: Any) -> Any:
    """A whole float as the int it stands for (JavaScript writes numbers)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_import(
    op_key: str, op: Mapping[str, Any], dtype: str, upload: uploads.Upload | None
) -> None:
    """Raise :class:`Unprocessable` unless ``op`` is a sound ``import`` op:
    one the server wrote for an upload, as :func:`write_layers` writes it.

    Clients cannot add this kind (collab/segmentation/ops.py refuses it on
    arrival), but a client's rewrite of an existing op slips past that
    check; the materialiser applies an ``import`` op only once this passes.
    ``dtype``: the layer's, as the materialiser reads its voxels; ``upload``:
    the upload the op names as the store finds it for the op's annotation
    (None: not this annotation's, nor shared with it). The op's ``author``
    must be the uploader (unless that user is gone)."""
    number = _integer(op.get("upload"))
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise Unprocessable(f"op {op_key[:60]!r}: 'upload' must be an upload id")
    lid = layer_id(number)
    if op_key != lid:
        raise Unprocessable(f"op {op_key[:60]!r}: an import op's id must be {lid!r}")
    if op.get("layer") != lid:
        raise Unprocessable(f"op {op_key[:60]!r}: an import op's layer must be {lid!r}")
    if upload is None or upload.id != number:
        raise Unprocessable(f"op {op_key[:60]!r}: upload {number} is not this annotation's")
    if upload.dtype != dtype:
        raise Unprocessable(
            f"op {op_key[:60]!r}: upload {number} holds {upload.dtype} voxels, the layer {dtype}"
        )
    if upload.author_id is not None and _integer(op.get("author")) != upload.author_id:
        raise Unprocessable(f"op {op_key[:60]!r}: the author is not the upload's")


async def apply(
    pool: Database,
    key: RoomKey,
    layer: str,
    info: Any,
    op_key: str,
    op: dict[str, Any],
    changed: dict[tuple[str, str, Brick], np.ndarray | bytes],
    current: Current,
) -> tuple[str, list[Brick]] | None:
    """Materialise an ``import`` op (collab/segmentation/materialise.py
    calls this for that kind, applied or replayed after an undo alike).
    Returns the op's reach for ``materialised_ops`` (its finest mag and the
    bricks it has there), None if it has none or is not sound
    (:func:`check_import`: skipped, and logged).

    The upload's bricks go into ``changed`` as they are stored (compressed:
    an import may hold thousands), so they are written with the op's
    version in one transaction and pushed to viewers like any op's. A
    coarser mag the upload carries keeps only its bricks over the finest
    mag's (the op's reach there is what an undo computes again); mags of
    the layer the upload lacks follow from the next finer one, over the
    bricks it wrote, batch by batch (:func:`_follow_coarser`: each batch is
    kept compressed before the next is read)."""
    upload = _integer(op.get("upload"))
    if not isinstance(upload, int) or isinstance(upload, bool):
        upload = None
    async with pool.acquire() as conn:
        found = None if upload is None else await uploads.get(conn, key.annotation_id, upload)
        try:
            check_import(op_key, op, info.dtype.name, found)
        except Unprocessable as exc:
            log.warning(
                "import op skipped",
                extra={"annotation": key.annotation_id, "op": op_key, "why": exc.message},
            )
            return None
        assert found is not None and upload is not None
        if not found.mags:
            return None  # a layer without voxels: nothing to write
        finest = found.mags[0]
        finest_mag = parse_mag(finest)
        places: dict[str, list[Brick]] = {}
        reach: set[Brick] | None = None
        for mag in found.mags:
            stored = await uploads.bricks_of(conn, upload, mag)
            if reach is None:
                reach = set(stored)
            else:
                coarse = parse_mag(mag)
                if any(c % f for c, f in zip(coarse, finest_mag, strict=True)):
                    continue  # no coarsening of the finest: not written
                ratio = tuple(c // f for c, f in zip(coarse, finest_mag, strict=True))
                over = {(b[0] // ratio[0], b[1] // ratio[1], b[2] // ratio[2]) for b in reach}
                stored = {b: d for b, d in stored.items() if b in over}
            for b, data in stored.items():
                changed[(layer, mag, b)] = data
            places[mag] = sorted(stored)

    async def keep(mag: str, rows: list[tuple[Brick, bytes]]) -> None:
        for b, data in rows:
            changed[(layer, mag, b)] = data

    await _follow_coarser(key, layer, info, places, changed, current, keep)
    bricks = places.get(finest) or []
    if not bricks:
        return None
    return finest, bricks


#: Writes a batch of a mag's bricks computed from the upload's (mag, [(brick,
#: zstd bytes)]) before the next batch is computed.
Keep = Callable[[str, list[tuple[Brick, bytes]]], Awaitable[None]]


async def _follow_coarser(
    key: RoomKey,
    layer: str,
    info: Any,
    places: dict[str, list[Brick]],
    changed: dict[tuple[str, str, Brick], np.ndarray | bytes],
    current: Current,
    keep: Keep,
) -> None:
    """Each mag of the layer that the upload lacks, coarser than one it
    carries: its bricks over the bricks the next finer mag holds, computed
    from that mag (the most frequent label of each cell), as for any op.

    In batches of at most :data:`FOLLOW_BATCH` finer bricks: each batch's
    coarser bricks are compared with what is there, compressed and handed
    to ``keep`` (written) before the next batch is read, so memory holds one
    batch whatever the size of the import. A step that is no whole
    coarsening of the finer mag, or more than MAX_MAG_STEP of its voxels
    per voxel, is left as it is (as the materialiser leaves it for drawn
    ops)."""
    carried = {parse_mag(m): set(bricks) for m, bricks in places.items()}
    if not carried:
        return
    touched = dict(carried)
    finer: Mag | None = None
    for mag in info.mags:
        if mag in carried:
            finer = mag
            continue
        if finer is None or mag.volume <= finer.volume:
            continue
        ratio = (mag.x // finer.x, mag.y // finer.y, mag.z // finer.z)
        step = ratio[0] * ratio[1] * ratio[2]
        if (
            any(r < 1 for r in ratio)
            or any(c % f for c, f in zip(mag, finer, strict=True))
            or step > MAX_MAG_STEP
        ):
            continue
        targets = sorted(
            {(b[0] // ratio[0], b[1] // ratio[1], b[2] // ratio[2]) for b in touched[finer]}
        )
        per = max(1, FOLLOW_BATCH // step)
        for start in range(0, len(targets), per):
            batch = targets[start : start + per]
            fine = [
                (cb[0] * ratio[0] + i, cb[1] * ratio[1] + j, cb[2] * ratio[2] + k)
                for cb in batch
                for i in range(ratio[0])
                for j in range(ratio[1])
                for k in range(ratio[2])
            ]
            under = await current(key, layer, str(finer), info, fine, changed, None)
            before = await current(key, layer, str(mag), info, batch, changed, None)
            rows = await asyncio.to_thread(
                _downsample_rows, batch, under, before, ratio, info.dtype
            )
            del under, before
            if rows:
                await keep(str(mag), rows)
        touched[mag] = set(targets)
        finer = mag


def _downsample_rows(
    batch: list[Brick],
    under: dict[Brick, np.ndarray],
    before: dict[Brick, np.ndarray],
    ratio: tuple[int, int, int],
    dtype: np.dtype[Any],
) -> list[tuple[Brick, bytes]]:
    """The coarser bricks of ``batch`` that differ from ``before``, computed
    from the finer bricks ``under`` them, compressed."""
    return [
        (cb, enc.compress(enc.to_raw(voxels)))
        for cb, voxels in zip(batch, _downsample(batch, under, ratio, dtype), strict=True)
        if not np.array_equal(voxels, before[cb])
    ]


def _downsample(
    batch: list[Brick],
    under: dict[Brick, np.ndarray],
    ratio: tuple[int, int, int],
    dtype: np.dtype[Any],
) -> list[np.ndarray]:
    """Each coarser brick of ``batch`` from the finer bricks ``under`` it."""
    out = []
    for cb in batch:
        block = np.zeros((ratio[0] * BRICK, ratio[1] * BRICK, ratio[2] * BRICK), dtype=dtype)
        for i in range(ratio[0]):
            for j in range(ratio[1]):
                for k in range(ratio[2]):
                    b = (cb[0] * ratio[0] + i, cb[1] * ratio[1] + j, cb[2] * ratio[2] + k)
                    block[
                        i * BRICK : (i + 1) * BRICK,
                        j * BRICK : (j + 1) * BRICK,
                        k * BRICK : (k + 1) * BRICK,
                    ] = under[b]
        out.append(paint.downsample_labels(block, ratio))
    return out
