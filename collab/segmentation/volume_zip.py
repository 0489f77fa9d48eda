"""The voxels of one WEBKNOSSOS volume layer in its data zip
(``data_Volume.zip`` inside an annotation download): read in the two
formats WEBKNOSSOS wrote (zarr3 today, WKW before), written in zarr3.

Pure apart from the zip it is handed. Every size is checked before it is
read or allocated, and everything wrong is an :class:`InvalidVolume` (422)
or a :class:`PayloadTooLarge` (413) naming the layer, the file and the
field:

- the data zip's directory (its central directory and end records) by the
  bytes zipfile asks for while opening it (:func:`open_zip`): at most
  :data:`DIRECTORY_ENTRY_BYTES` per member it may hold (the layer's bricks
  plus :data:`MEMBERS_BEYOND_BRICKS`), so a directory that declares
  gigabytes, or a million tiny members, is refused before it is read;
- each member by its declared size, charged to the import's byte budget
  before a byte of it is read (zipfile never inflates a member past its
  declared size: it stops there and checks the CRC);
- zarr3 chunks by the size their codec header declares; WKW bucket files
  are read block by block (one compressed and one raw block in memory at a
  time, each block no larger than LZ4 can make it).

zarr3 (what WEBKNOSSOS and the ``webknossos`` library write)::

    datasource-properties.json           one layer: elementClass, mags, boundingBox
    volumeAnnotationData/1/zarr.json     shape [1, X, Y, Z], chunks [1, 32, 32, 32],
    volumeAnnotationData/1/c.0.3.1.0     codecs transpose (x fastest), bytes, blosc
    volumeAnnotationData/2-2-1/…

Chunks are read directly, not through zarr-python: in this layout a chunk is
one 32³ brick, x fastest — the bytes collab stores — so decoding is one
codec call per chunk on bytes read from the zip, with no unzipping to a
temporary folder, no listing through a store, and a size check before every
allocation. The codecs WEBKNOSSOS writes are supported (``transpose``,
``bytes``, ``blosc``, ``zstd``, ``gzip``, ``crc32c``); others, sharding
among them, are refused naming the codec.

WKW (WEBKNOSSOS before zarr3; one file per bucket, ``1/z56/y131/x84.wkw``,
and a ``header.wkw`` per mag): a 16-byte header (``WKW``, version 1, log2 of
the block side and of the blocks per file side, block type 1 raw / 2 LZ4 /
3 LZ4HC, voxel type, bytes per voxel, data offset), then for compressed
files a table of each block's end offset, then the blocks in Morton order,
each x fastest. Read here with numcodecs' LZ4 (already a dependency
through zarr) rather than the ``wkw`` package, whose native library reads
files from disk and would have to be trusted with damaged ones.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
from numcodecs import LZ4, Blosc, Zstd

from collab.errors import CollabError, InvalidVolume, PayloadTooLarge
from collab.volume import encoding as enc
from collab.volume.mags import Mag, mag_of, parse_mag

BRICK = 32
DTYPES = ("uint8", "uint16", "uint32", "uint64")
PROPERTIES = "datasource-properties.json"
#: The layer folder inside a zarr3 data zip, as WEBKNOSSOS names it.
LAYER_FOLDER = "volumeAnnotationData"
#: Largest JSON file read from a data zip.
MAX_JSON = 1 << 20
#: Bytes a compressed chunk may hold beyond its raw size (codec headers).
CHUNK_SLACK = 1 << 16
#: Largest chunk side (voxels): chunks are split into 32³ bricks.
MAX_CHUNK_SIDE = 256
#: Brick coordinates stay within this (as brick paths do).
MAX_BRICK = 1 << 26
#: Members a data zip may hold beyond one per brick: the properties, a
#: ``zarr.json`` or ``header.wkw`` per mag, folders.
MEMBERS_BEYOND_BRICKS = 1024
#: Directory bytes allowed per member: its 46-byte header, its name (a
#: WEBKNOSSOS chunk's is under 60 bytes) and extra fields (zip64, times).
DIRECTORY_ENTRY_BYTES = 256
#: Bytes zipfile reads besides the directory while opening a zip: the end
#: record with a comment of up to 64 KiB, the zip64 records.
DIRECTORY_END_BYTES = 1 << 17

Brick = tuple[int, int, int]

_WKW_FILE = re.compile(r"^z(\d{1,9})/y(\d{1,9})/x(\d{1,9})\.wkw$")
_WKW_DTYPES = {1: "uint8", 2: "uint16", 3: "uint32", 4: "uint64"}
_WKW_OTHER_TYPES = {5: "float32", 6: "float64", 7: "int8", 8: "int16", 9: "int32", 10: "int64"}


@dataclass
class Budget:
    """What one import may inflate and store, shared by all its layers."""

    max_bytes: int
    max_bricks: int
    bytes: int = 0
    bricks: int = 0

    @property
    def max_members(self) -> int:
        """Members one data zip may hold."""
        return self.max_bricks + MEMBERS_BEYOND_BRICKS

    def inflate(self, size: int, what: str) -> None:
        self.bytes += size
        if self.bytes > self.max_bytes:
            raise PayloadTooLarge(
                f"{what}: the volume data inflates past the {self.max_bytes}-byte limit"
            )

    def brick(self, what: str) -> None:
        self.bricks += 1
        if self.bricks > self.max_bricks:
            raise PayloadTooLarge(f"{what}: more than {self.max_bricks} bricks of volume data")


@dataclass
class LayerData:
    """What a data zip says of its layer."""

    format: str  # "zarr3" or "wkw"
    dtype: np.dtype[Any]
    #: The mags the zip carries, finest first.
    mags: list[Mag]
    #: The layer's bounding box (mag-1 voxels) where the zip gives one.
    top_left: tuple[int, int, int] | None = None
    size: tuple[int, int, int] | None = None
    largest_segment_id: int | None = None
    _sources: list[Any] = field(default_factory=list, repr=False)


def admit_member(info: zipfile.ZipInfo, limit: int, where: str, budget: Budget | None) -> None:
    """Before a member is read: refused past ``limit`` by its declared size,
    refused encrypted, and its declared size charged to ``budget`` (zipfile
    inflates no more than that: it stops at the size and checks the CRC)."""
    if info.file_size > limit:
        raise PayloadTooLarge(
            f"{where}: {info.filename} inflates to {info.file_size} bytes, over {limit}"
        )
    if info.flag_bits & 0x1:
        raise InvalidVolume(f"{where}: {info.filename} is encrypted")
    if budget is not None:
        budget.inflate(info.file_size, f"{where}: {info.filename}")


def read_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    limit: int,
    where: str,
    budget: Budget | None = None,
) -> bytes:
    """A member's bytes, admitted first (:func:`admit_member`)."""
    admit_member(info, limit, where, budget)
    try:
        with archive.open(info) as f:
            data = f.read(limit + 1)
    except CollabError:
        raise
    except Exception as exc:  # zipfile and zlib on damaged bytes raise many kinds
        raise InvalidVolume(
            f"{where}: {info.filename} is damaged ({type(exc).__name__}: {exc})"
        ) from None
    if len(data) > limit:
        raise PayloadTooLarge(f"{where}: {info.filename} inflates past {limit} bytes")
    return data


class _DirectoryGuard:
    """The file a zip is opened from. While zipfile opens it (reads the end
    records and the central directory) it may ask for ``limit`` bytes in
    all; a larger read is refused before it is made (zipfile asks for the
    whole directory in one read, of the size the end record declares)."""

    def __init__(self, stream: IO[bytes], limit: int, what: str) -> None:
        self._stream = stream
        self._limit = limit
        self._what = what
        self._asked = 0
        self.opening = True

    def read(self, n: int = -1, /) -> bytes:
        if self.opening:
            if n is None or n < 0:
                here = self._stream.tell()
                n = self._stream.seek(0, 2) - here
                self._stream.seek(here)
            self._asked += n
            if self._asked > self._limit:
                raise PayloadTooLarge(
                    f"{self._what}: the data zip's directory is larger than {self._limit} "
                    "bytes (room for COLLAB_MAX_VOLUME_BRICKS + "
                    f"{MEMBERS_BEYOND_BRICKS} members)"
                )
        return self._stream.read(n)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def seekable(self) -> bool:
        return True


def open_zip(stream: IO[bytes], where: str, max_members: int) -> zipfile.ZipFile:
    """The data zip in ``stream``, its directory bounded before it is read
    (room for ``max_members`` members) and its members counted."""
    guard = _DirectoryGuard(
        stream, max_members * DIRECTORY_ENTRY_BYTES + DIRECTORY_END_BYTES, where
    )
    try:
        archive = zipfile.ZipFile(guard)
    except CollabError:
        raise
    except Exception as exc:
        raise InvalidVolume(f"{where}: the data zip is damaged ({type(exc).__name__})") from None
    guard.opening = False
    count = len(archive.infolist())
    if count > max_members:
        archive.close()
        raise PayloadTooLarge(
            f"{where}: the data zip holds {count} members, more than {max_members} "
            f"(COLLAB_MAX_VOLUME_BRICKS + {MEMBERS_BEYOND_BRICKS})"
        )
    return archive


class LayerReader:
    """The bricks of one volume layer's data zip."""

    def __init__(self, archive: zipfile.ZipFile, where: str, budget: Budget) -> None:
        self.archive = archive
        self.where = where
        self.budget = budget
        self.members = {i.filename: i for i in archive.infolist() if not i.is_dir()}
        if PROPERTIES in self.members:
            self.data: LayerData | None = self._zarr3_layer()
        elif any(n == "header.wkw" or n.endswith("/header.wkw") for n in self.members):
            self.data = self._wkw_layer()
        elif not self.members:
            self.data = None  # an empty data zip: a layer without voxels
        else:
            raise InvalidVolume(
                f"{where}: the data zip holds neither {PROPERTIES} (zarr3) nor header.wkw (WKW)"
            )

    def _json(self, name: str) -> Any:
        info = self.members.get(name)
        if info is None:
            raise InvalidVolume(f"{self.where}: {name} is missing")
        data = read_member(self.archive, info, MAX_JSON, self.where, self.budget)
        try:
            return json.loads(data)
        except ValueError:
            raise InvalidVolume(f"{self.where}: {name} is not JSON") from None

    # -- zarr3 -----------------------------------------------------------------

    def _zarr3_layer(self) -> LayerData:
        props = self._json(PROPERTIES)
        layers = props.get("dataLayers") if isinstance(props, dict) else None
        if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
            raise InvalidVolume(f"{self.where}: {PROPERTIES}: expected exactly one data layer")
        layer = layers[0]
        name = layer.get("name")
        if not isinstance(name, str) or not name or ".." in name:
            raise InvalidVolume(f"{self.where}: {PROPERTIES}: the layer has no usable name")
        fmt = layer.get("dataFormat", "zarr3")
        if fmt != "zarr3":
            raise InvalidVolume(f"{self.where}: {PROPERTIES}: dataFormat {str(fmt)[:20]!r}")
        dtype = layer.get("elementClass")
        if dtype not in DTYPES:
            raise InvalidVolume(
                f"{self.where}: {PROPERTIES}: elementClass {str(dtype)[:20]!r} is no segmentation "
                f"type (one of {', '.join(DTYPES)})"
            )
        if layer.get("numChannels", 1) != 1:
            raise InvalidVolume(f"{self.where}: {PROPERTIES}: numChannels must be 1")
        data = LayerData("zarr3", np.dtype(dtype), [])
        box = layer.get("boundingBox")
        if isinstance(box, dict):
            try:
                top = tuple(int(c) for c in box["topLeft"])
                size = (int(box["width"]), int(box["height"]), int(box["depth"]))
            except (KeyError, TypeError, ValueError):
                raise InvalidVolume(
                    f"{self.where}: {PROPERTIES}: boundingBox is malformed"
                ) from None
            if len(top) != 3 or min(*top, *size) < 0 or max(*top, *size) >= 2**31:
                raise InvalidVolume(f"{self.where}: {PROPERTIES}: boundingBox is out of range")
            data.top_left, data.size = (top[0], top[1], top[2]), size
        largest = layer.get("largestSegmentId")
        if isinstance(largest, int) and not isinstance(largest, bool) and largest >= 0:
            data.largest_segment_id = largest
        mags = layer.get("mags")
        if not isinstance(mags, list) or not 0 < len(mags) <= 32:
            raise InvalidVolume(f"{self.where}: {PROPERTIES}: mags must list 1 to 32 mags")
        for entry in mags:
            try:
                mag = mag_of(entry.get("mag") if isinstance(entry, dict) else None)
            except CollabError as exc:
                raise InvalidVolume(f"{self.where}: {PROPERTIES}: {exc.message}") from None
            if mag in data.mags:
                raise InvalidVolume(f"{self.where}: {PROPERTIES}: mag {mag} is listed twice")
            path = entry.get("path") if isinstance(entry, dict) else None
            path = path if isinstance(path, str) and path else f"{name}/{mag}"
            path = path.removeprefix("./").rstrip("/")
            if path.startswith("/") or ".." in path.split("/"):
                raise InvalidVolume(f"{self.where}: mag {mag}: path {path[:60]!r}")
            if f"{path}/zarr.json" not in self.members:
                continue  # listed without data: nothing of it was written
            data.mags.append(mag)
            data._sources.append((mag, path, self._zarr_array(path, data.dtype)))
        data._sources.sort(key=lambda s: s[0].volume)
        data.mags.sort(key=lambda m: m.volume)
        return data

    def _zarr_array(self, path: str, dtype: np.dtype[Any]) -> _ZarrArray:
        where = f"{self.where}: {path}/zarr.json"
        meta = self._json(f"{path}/zarr.json")
        if not isinstance(meta, dict) or meta.get("zarr_format") != 3:
            raise InvalidVolume(f"{where}: not a zarr v3 array")
        if meta.get("node_type") != "array":
            raise InvalidVolume(f"{where}: node_type must be 'array'")
        if meta.get("data_type") != dtype.name:
            raise InvalidVolume(
                f"{where}: data_type {str(meta.get('data_type'))[:20]!r} is not the layer's "
                f"elementClass {dtype.name!r}"
            )
        shape = meta.get("shape")
        names = meta.get("dimension_names")
        if not isinstance(shape, list) or len(shape) not in (3, 4):
            raise InvalidVolume(f"{where}: shape must have 4 axes (c, x, y, z) or 3 (x, y, z)")
        axes = ["c", "x", "y", "z"][-len(shape) :]
        if names is not None and list(names) != axes:
            raise InvalidVolume(f"{where}: dimension_names must be {axes}")
        grid = meta.get("chunk_grid") or {}
        chunk = (
            (grid.get("configuration") or {}).get("chunk_shape") if isinstance(grid, dict) else None
        )
        if (
            not isinstance(grid, dict)
            or grid.get("name") != "regular"
            or not isinstance(chunk, list)
            or len(chunk) != len(shape)
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in chunk)
        ):
            raise InvalidVolume(f"{where}: chunk_grid must be regular, one size per axis")
        if len(chunk) == 4 and chunk[0] != 1:
            raise InvalidVolume(f"{where}: chunks must hold one channel")
        side = tuple(chunk[-3:])
        if not all(0 < c <= MAX_CHUNK_SIDE and c % BRICK == 0 for c in side):
            raise InvalidVolume(
                f"{where}: chunk sides must be multiples of {BRICK} up to {MAX_CHUNK_SIDE}"
            )
        keys = meta.get("chunk_key_encoding") or {"name": "default"}
        kname = keys.get("name") if isinstance(keys, dict) else None
        sep = ((keys.get("configuration") or {}) if isinstance(keys, dict) else {}).get(
            "separator", "/" if kname == "default" else "."
        )
        if kname not in ("default", "v2") or sep not in ("/", "."):
            raise InvalidVolume(f"{where}: chunk_key_encoding {str(keys)[:60]}")
        if meta.get("fill_value", 0) not in (0, None):
            raise InvalidVolume(f"{where}: fill_value must be 0")
        codecs = meta.get("codecs")
        if not isinstance(codecs, list) or not codecs:
            raise InvalidVolume(f"{where}: codecs must be a list")
        return _ZarrArray(
            len(shape), side, kname == "default", sep, _pipeline(codecs, len(shape), where)
        )

    def _zarr3_bricks(self, data: LayerData) -> Iterator[tuple[Mag, Brick, np.ndarray]]:
        for mag, path, array in data._sources:
            prefix = f"{path}/"
            for name, info in self.members.items():
                if not name.startswith(prefix) or name == f"{path}/zarr.json":
                    continue
                key = name[len(prefix) :]
                where = f"{self.where}: {name}"
                index = array.index(key)
                if index is None:
                    raise InvalidVolume(f"{where}: not a chunk of the array")
                raw_size = int(np.prod(array.side)) * data.dtype.itemsize
                stored = read_member(
                    self.archive, info, raw_size + CHUNK_SLACK, self.where, self.budget
                )
                voxels = array.decode(stored, data.dtype, where)
                origin = [index[a] * array.side[a] // BRICK for a in range(3)]
                for i in range(array.side[0] // BRICK):
                    for j in range(array.side[1] // BRICK):
                        for k in range(array.side[2] // BRICK):
                            b = (origin[0] + i, origin[1] + j, origin[2] + k)
                            if max(b) >= MAX_BRICK:
                                raise InvalidVolume(f"{where}: chunk index out of range")
                            self.budget.brick(self.where)
                            yield (
                                mag,
                                b,
                                voxels[
                                    i * BRICK : (i + 1) * BRICK,
                                    j * BRICK : (j + 1) * BRICK,
                                    k * BRICK : (k + 1) * BRICK,
                                ],
                            )

    # -- WKW -------------------------------------------------------------------

    def _wkw_layer(self) -> LayerData:
        sources = []
        dtype: np.dtype[Any] | None = None
        for name in sorted(self.members):
            if not (name == "header.wkw" or name.endswith("/header.wkw")):
                continue
            folder = name[: -len("header.wkw")].rstrip("/")
            where = f"{self.where}: {name}"
            try:
                mag = parse_mag(folder or "1")
            except CollabError:
                raise InvalidVolume(f"{where}: {folder!r} is not a mag folder") from None
            header = _WkwHeader.parse(
                read_member(self.archive, self.members[name], 64, self.where, self.budget),
                where,
            )
            if dtype is not None and header.dtype != dtype:
                raise InvalidVolume(f"{where}: voxel type {header.dtype} differs from {dtype}")
            dtype = header.dtype
            sources.append((mag, folder, header))
        assert dtype is not None
        sources.sort(key=lambda s: s[0].volume)
        data = LayerData("wkw", dtype, [s[0] for s in sources])
        data._sources = sources
        return data

    def _wkw_bricks(self, data: LayerData) -> Iterator[tuple[Mag, Brick, np.ndarray]]:
        for mag, folder, header in data._sources:
            prefix = f"{folder}/" if folder else ""
            per_file = 1 << header.file_log2
            for name, info in self.members.items():
                if not name.startswith(prefix) or name.endswith("header.wkw"):
                    continue
                match = _WKW_FILE.match(name[len(prefix) :])
                if match is None:
                    if "/" in name[len(prefix) :] and not name[len(prefix) :].startswith("z"):
                        continue  # another mag's folder
                    raise InvalidVolume(f"{self.where}: {name}: not a WKW bucket file")
                where = f"{self.where}: {name}"
                z, y, x = (int(match[i]) for i in (1, 2, 3))
                admit_member(info, header.file_bytes_max + CHUNK_SLACK, self.where, self.budget)
                for (i, j, k), voxels in header.read_blocks(self.archive, info, where):
                    b = (x * per_file + i, y * per_file + j, z * per_file + k)
                    if max(b) >= MAX_BRICK:
                        raise InvalidVolume(f"{where}: bucket index out of range")
                    if per_file > 1 and not voxels.any():
                        continue  # a block of a multi-block file nobody wrote
                    self.budget.brick(self.where)
                    yield mag, b, voxels

    def bricks(self) -> Iterator[tuple[Mag, Brick, np.ndarray]]:
        """Every brick the zip holds: (mag, brick at that mag, voxels [x, y, z])."""
        if self.data is None:
            return iter(())
        if self.data.format == "zarr3":
            return self._zarr3_bricks(self.data)
        return self._wkw_bricks(self.data)


# -- zarr3 codecs ------------------------------------------------------------------


@dataclass(frozen=True)
class _Pipeline:
    #: Axis order of the array as the bytes codec sees it (the transpose's).
    order: tuple[int, ...]
    endian: str
    #: Bytes-to-bytes codecs, as listed (decoded in reverse).
    compressors: tuple[tuple[str, dict[str, Any]], ...]


def _pipeline(codecs: list[Any], ndim: int, where: str) -> _Pipeline:
    order = tuple(range(ndim))
    endian = "little"
    stage = 0  # 0: array→array, 1: after bytes
    compressors = []
    for codec in codecs:
        if not isinstance(codec, dict) or not isinstance(codec.get("name"), str):
            raise InvalidVolume(f"{where}: a codec is not an object with a name")
        name, config = codec["name"], codec.get("configuration") or {}
        if not isinstance(config, dict):
            raise InvalidVolume(f"{where}: codec {name}: configuration must be an object")
        if name == "transpose" and stage == 0:
            given = config.get("order")
            if given == "F":
                perm = tuple(reversed(range(ndim)))
            elif given == "C":
                perm = tuple(range(ndim))
            elif isinstance(given, list) and sorted(given) == list(range(ndim)):
                perm = tuple(int(a) for a in given)
            else:
                raise InvalidVolume(f"{where}: transpose order {str(given)[:30]}")
            order = tuple(order[p] for p in perm)
        elif name == "bytes" and stage == 0:
            endian = config.get("endian", "little")
            if endian not in ("little", "big"):
                raise InvalidVolume(f"{where}: bytes endian {str(endian)[:20]!r}")
            stage = 1
        elif name in ("blosc", "zstd", "gzip", "crc32c") and stage == 1:
            compressors.append((name, config))
        else:
            raise InvalidVolume(
                f"{where}: codec {name[:40]!r} is not supported here (transpose, bytes, "
                "blosc, zstd, gzip and crc32c are, in that order)"
            )
    if stage == 0:
        raise InvalidVolume(f"{where}: the codecs lack 'bytes'")
    return _Pipeline(order, endian, tuple(compressors))


def _blosc_size(data: bytes) -> int:
    if len(data) < 16:
        return -1
    nbytes, _blocksize, cbytes = struct.unpack_from("<III", data, 4)
    return nbytes if cbytes == len(data) else -1


@dataclass(frozen=True)
class _ZarrArray:
    ndim: int
    side: tuple[int, ...]
    default_keys: bool
    sep: str
    pipeline: _Pipeline

    def index(self, key: str) -> tuple[int, int, int] | None:
        parts = key.split(self.sep)
        if self.default_keys:
            if not parts or parts[0] != "c":
                return None
            parts = parts[1:]
        if len(parts) != self.ndim or not all(
            p.isascii() and p.isdigit() and len(p) < 10 for p in parts
        ):
            return None
        values = [int(p) for p in parts]
        if self.ndim == 4:
            if values[0] != 0:
                return None
            values = values[1:]
        return values[0], values[1], values[2]

    def decode(self, stored: bytes, dtype: np.dtype[Any], where: str) -> np.ndarray:
        """One chunk's voxels, [x, y, z]."""
        size = int(np.prod(self.side)) * dtype.itemsize
        data = stored
        try:
            for index, (name, _config) in enumerate(reversed(self.pipeline.compressors)):
                last = index == len(self.pipeline.compressors) - 1
                want = size if last else len(data) + CHUNK_SLACK
                if name == "crc32c":
                    if len(data) < 4:
                        raise ValueError("no checksum")
                    data = data[:-4]  # zlib has no crc32c; blosc/zstd check their own frames
                elif name == "blosc":
                    if _blosc_size(data) != size and last:
                        raise ValueError("the blosc header does not declare the chunk's size")
                    out = np.empty(size, dtype=np.uint8)
                    data = bytes(Blosc().decode(data, out=out))
                elif name == "zstd":
                    out = np.zeros(want, dtype=np.uint8)
                    data = bytes(Zstd().decode(data, out=out))
                else:  # gzip
                    inflater = zlib.decompressobj(wbits=47)
                    data = inflater.decompress(data, want + 1)
        except Exception as exc:
            raise InvalidVolume(f"{where}: the chunk is damaged ({exc})") from None
        if len(data) != size:
            raise InvalidVolume(f"{where}: the chunk holds {len(data)} bytes, expected {size}")
        full = (1, *self.side) if self.ndim == 4 else self.side
        stored_shape = tuple(full[a] for a in self.pipeline.order)
        order: Any = "<" if self.pipeline.endian == "little" else ">"
        array = np.frombuffer(data, dtype=dtype.newbyteorder(order)).reshape(stored_shape)
        array = array.transpose(np.argsort(self.pipeline.order))
        if self.ndim == 4:
            array = array[0]
        return np.asarray(array, dtype=dtype)


# -- WKW -------------------------------------------------------------------------


@dataclass(frozen=True)
class _WkwHeader:
    file_log2: int
    block_type: int
    dtype: np.dtype[Any]

    @classmethod
    def parse(cls, data: bytes, where: str) -> _WkwHeader:
        if len(data) < 16 or data[:3] != b"WKW":
            raise InvalidVolume(f"{where}: not a WKW header")
        version, log2, block_type, voxel_type, voxel_size = data[3:8]
        if version != 1:
            raise InvalidVolume(f"{where}: WKW version {version} (1 is read)")
        block_log2, file_log2 = log2 & 0x0F, log2 >> 4
        if block_log2 != 5:
            raise InvalidVolume(f"{where}: WKW blocks of side {1 << block_log2} (32 is read)")
        if file_log2 > 5:
            raise InvalidVolume(f"{where}: WKW files of {1 << file_log2}³ blocks (up to 32³)")
        if block_type not in (1, 2, 3):
            raise InvalidVolume(f"{where}: WKW block type {block_type}")
        if voxel_type not in _WKW_DTYPES:
            other = _WKW_OTHER_TYPES.get(voxel_type, str(voxel_type))
            raise InvalidVolume(
                f"{where}: WKW voxel type {other} is no segmentation type "
                f"(one of {', '.join(DTYPES)})"
            )
        dtype = np.dtype(_WKW_DTYPES[voxel_type])
        if voxel_size != dtype.itemsize:
            raise InvalidVolume(f"{where}: WKW voxels of {voxel_size} bytes: one channel is read")
        return cls(file_log2, block_type, dtype)

    @property
    def block_bytes(self) -> int:
        return BRICK**3 * self.dtype.itemsize

    @property
    def stored_block_max(self) -> int:
        """The most bytes a block may take in a file: raw, its voxels; LZ4,
        what LZ4 makes of incompressible bytes at worst."""
        size = self.block_bytes
        return size if self.block_type == 1 else size + size // 255 + 16

    @property
    def file_bytes_max(self) -> int:
        n = 1 << (3 * self.file_log2)
        table = 0 if self.block_type == 1 else 8 * n
        return 16 + table + n * self.stored_block_max

    def read_blocks(
        self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str
    ) -> Iterator[tuple[Brick, np.ndarray]]:
        """Each block of a bucket file (a member, admitted already): its
        position in the file, its voxels. Read as a stream, block by block:
        a file of 32³ blocks never is in memory whole."""
        try:
            stream = archive.open(info)
        except CollabError:
            raise
        except Exception as exc:
            raise InvalidVolume(f"{where}: damaged ({type(exc).__name__}: {exc})") from None
        with stream:
            reader = _Exactly(stream, where)
            head = reader.take(16, "the header")
            if _WkwHeader.parse(head, where) != self:
                raise InvalidVolume(f"{where}: the file's header differs from the mag's header.wkw")
            (offset,) = struct.unpack_from("<Q", head, 8)
            n = 1 << (3 * self.file_log2)
            size = self.block_bytes
            if self.block_type == 1:
                at = 16
                ends = [offset + (i + 1) * size for i in range(n)]
            else:
                at = 16 + 8 * n
                ends = list(struct.unpack(f"<{n}Q", reader.take(8 * n, "the block table")))
            if offset < at:
                raise InvalidVolume(f"{where}: the data offset {offset} lies inside the header")
            reader.skip(offset - at)
            start = offset
            for i, end in enumerate(ends):
                if not start <= end <= start + self.stored_block_max:
                    raise InvalidVolume(f"{where}: block {i} lies outside the file")
                block = reader.take(end - start, f"block {i}")
                if self.block_type == 1:
                    raw = block
                else:
                    try:
                        raw = bytes(LZ4().decode(struct.pack("<I", size) + block))
                    except Exception as exc:
                        raise InvalidVolume(f"{where}: block {i} is damaged ({exc})") from None
                if len(raw) != size:
                    raise InvalidVolume(
                        f"{where}: block {i} holds {len(raw)} bytes, expected {size}"
                    )
                yield _morton(i), enc.from_raw(raw, self.dtype)
                start = end
            reader.drain()  # to its end, so that zipfile checks its CRC


class _Exactly:
    """Reads of exact lengths from a zip member's stream; damage (zipfile,
    zlib, a CRC) and a stream cut short are :class:`InvalidVolume`."""

    def __init__(self, stream: IO[bytes], where: str) -> None:
        self._stream = stream
        self._where = where

    def _read(self, n: int) -> bytes:
        try:
            return self._stream.read(n)
        except CollabError:
            raise
        except Exception as exc:  # zipfile and zlib on damaged bytes
            raise InvalidVolume(f"{self._where}: damaged ({type(exc).__name__}: {exc})") from None

    def take(self, n: int, what: str) -> bytes:
        parts = []
        left = n
        while left:
            chunk = self._read(min(left, 1 << 20))
            if not chunk:
                raise InvalidVolume(f"{self._where}: {what} lies outside the file")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def skip(self, n: int) -> None:
        while n:
            chunk = self._read(min(n, 1 << 20))
            if not chunk:
                raise InvalidVolume(f"{self._where}: the data offset lies outside the file")
            n -= len(chunk)

    def drain(self) -> None:
        while self._read(1 << 20):
            pass


def _morton(i: int) -> Brick:
    x = y = z = 0
    bit = 0
    while i:
        x |= (i & 1) << bit
        y |= ((i >> 1) & 1) << bit
        z |= ((i >> 2) & 1) << bit
        i >>= 3
        bit += 1
    return x, y, z


# -- writing -----------------------------------------------------------------------


class ZarrZipWriter:
    """A zarr3 data zip in WEBKNOSSOS's layout (what its downloads hold):
    one chunk per brick, written as bricks arrive; the JSON files at the end."""

    def __init__(self, stream: IO[bytes], dtype: np.dtype[Any]) -> None:
        self.zip = zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.dtype = dtype
        #: Per mag: the lowest and highest voxel (of that mag) of its bricks.
        self.low: dict[Mag, list[int]] = {}
        self.high: dict[Mag, list[int]] = {}
        self._blosc = Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE)

    def add(self, mag: Mag, brick: Brick, raw: bytes) -> None:
        """One brick's raw bytes (x fastest, little-endian)."""
        typed = np.frombuffer(raw, dtype=self.dtype.newbyteorder("<"))
        chunk = bytes(self._blosc.encode(typed))
        x, y, z = brick
        self.zip.writestr(f"{LAYER_FOLDER}/{mag}/c.0.{x}.{y}.{z}", chunk)
        low = self.low.setdefault(mag, [b * BRICK for b in brick])
        high = self.high.setdefault(mag, [0, 0, 0])
        for a in range(3):
            low[a] = min(low[a], brick[a] * BRICK)
            high[a] = max(high[a], (brick[a] + 1) * BRICK)

    def close(
        self,
        mags: list[Mag],
        top_left: tuple[int, int, int],
        size: tuple[int, int, int],
        voxel_size: tuple[float, float, float],
        largest_segment_id: int | None,
    ) -> None:
        """Write every mag's zarr.json and the properties; close the zip.
        The bounding box is widened to hold every brick written."""
        low = list(top_left)
        end = [top_left[a] + size[a] for a in range(3)]
        for mag, high in self.high.items():
            for a in range(3):
                low[a] = min(low[a], self.low[mag][a] * mag[a])
                end[a] = max(end[a], high[a] * mag[a])
        entries = []
        for mag in sorted(set(mags) | set(self.high), key=lambda m: m.volume):
            shape = [_ceil(_ceil(end[a], mag[a]), BRICK) * BRICK for a in range(3)]
            meta = {
                "zarr_format": 3,
                "node_type": "array",
                "shape": [1, *shape],
                "data_type": self.dtype.name,
                "chunk_grid": {
                    "name": "regular",
                    "configuration": {"chunk_shape": [1, 32, 32, 32]},
                },
                "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}},
                "fill_value": 0,
                "codecs": [
                    {"name": "transpose", "configuration": {"order": [3, 2, 1, 0]}},
                    {"name": "bytes", "configuration": {"endian": "little"}},
                    {
                        "name": "blosc",
                        "configuration": {
                            "cname": "lz4",
                            "clevel": 5,
                            "shuffle": "shuffle",
                            "typesize": self.dtype.itemsize,
                            "blocksize": 0,
                        },
                    },
                ],
                "dimension_names": ["c", "x", "y", "z"],
            }
            self.zip.writestr(f"{LAYER_FOLDER}/{mag}/zarr.json", json.dumps(meta, indent=2))
            entries.append(
                {
                    "mag": [mag.x, mag.y, mag.z],
                    "path": f"./{LAYER_FOLDER}/{mag}",
                    "axisOrder": {"c": 0, "x": 1, "y": 2, "z": 3},
                }
            )
        layer: dict[str, Any] = {
            "name": LAYER_FOLDER,
            "category": "segmentation",
            "boundingBox": {
                "topLeft": low,
                "width": end[0] - low[0],
                "height": end[1] - low[1],
                "depth": end[2] - low[2],
            },
            "dataFormat": "zarr3",
            "mags": entries,
            "numChannels": 1,
            "elementClass": self.dtype.name,
        }
        if largest_segment_id is not None:
            layer["largestSegmentId"] = largest_segment_id
        props = {
            "id": {"name": "", "team": ""},
            "scale": {"factor": list(voxel_size), "unit": "nanometer"},
            "dataLayers": [layer],
            "version": 1,
        }
        self.zip.writestr(PROPERTIES, json.dumps(props, indent=2))
        self.zip.close()


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
