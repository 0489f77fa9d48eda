"""Opening a dataset: its store, its layout, its arrays (all through zarr-python)."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import zarr.api.asynchronous as zasync
from zarr.abc.store import Store
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import StorePath

from collab.config import ObjectStorage
from collab.errors import LayoutError, NotFound
from collab.volume.agglomerates import (
    SEGMENT_TO_AGGLOMERATE,
    AgglomerateFile,
    read_mapping_table,
)
from collab.volume.layout import (
    WK_PROPERTIES,
    DatasetSpec,
    LayerSpec,
    labels_of,
    multiscales_of,
    numpy_dtype,
    ome_layer,
    parse_multiscale,
    parse_webknossos,
)
from collab.volume.mags import Mag
from collab.volume.source import MagSource
from collab.volume.storage import StoreHealth, is_url, open_store

#: Folder (inside a segmentation layer) holding supervoxel→agglomerate mappings:
#: each a WEBKNOSSOS agglomerate attachment (a zarr group, collab/volume/agglomerates.py)
#: or a bare 1-D zarr array indexed by supervoxel id.
MAPPINGS_DIR = "agglomerates"


async def read_json(store: Store, key: str) -> Any:
    buf = await store.get(key, prototype=default_buffer_prototype())
    if buf is None:
        return None
    try:
        return orjson.loads(buf.to_bytes())
    except orjson.JSONDecodeError as exc:
        raise LayoutError(f"{key}: not valid JSON ({exc})") from None


@dataclass
class Layer:
    spec: LayerSpec
    dtype: np.dtype[Any]
    sources: dict[Mag, MagSource]
    store: Store
    #: Mapping name → path of its supervoxel→agglomerate array.
    mappings: dict[str, str] = field(default_factory=dict)
    #: The mappings that come with a graph (agglomerate attachments).
    agglomerates: dict[str, AgglomerateFile] = field(default_factory=dict)
    _loaded: dict[str, np.ndarray] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.spec.name

    @functools.cached_property
    def dtype_name(self) -> str:
        """``dtype.name``, which numpy computes anew each time (µs per brick)."""
        return str(self.dtype.name)

    def source(self, mag: Mag) -> MagSource:
        found = self.sources.get(mag)
        if found is None:
            known = ", ".join(str(m) for m in self.sources)
            raise NotFound(f"layer {self.name!r} has no mag {mag} (it has {known})")
        return found

    async def mapping(self, name: str) -> np.ndarray:
        """The supervoxel→agglomerate array of mapping ``name`` (loaded once)."""
        if name in self._loaded:
            return self._loaded[name]
        path = self.mappings.get(name)
        if path is None:
            raise NotFound(f"layer {self.name!r} has no mapping {name!r}")
        async with self._lock:
            if name not in self._loaded:
                self._loaded[name] = await asyncio.to_thread(
                    read_mapping_table, self.store, path, self.dtype
                )
        return self._loaded[name]

    def agglomerate_file(self, name: str) -> AgglomerateFile:
        """The agglomerate attachment behind mapping ``name``."""
        found = self.agglomerates.get(name)
        if found is None:
            if name in self.mappings:
                raise NotFound(f"mapping {name!r} of layer {self.name!r} has no agglomerate graph")
            raise NotFound(f"layer {self.name!r} has no mapping {name!r}")
        return found

    def metadata(self) -> dict[str, Any]:
        spec = self.spec
        assert spec.top_left is not None and spec.size is not None
        meta: dict[str, Any] = {
            "name": spec.name,
            "category": spec.category,
            "dtype": self.dtype.name,
            "boundingBox": {"topLeft": list(spec.top_left), "size": list(spec.size)},
            "mags": [str(m) for m in sorted(self.sources, key=lambda m: m.volume)],
        }
        if spec.category == "segmentation":
            meta["mappings"] = sorted(self.mappings)
            meta["agglomerateGraphs"] = sorted(self.agglomerates)
        return meta


@dataclass
class Dataset:
    name: str
    url: str
    layout: str
    voxel_size: tuple[float, float, float]
    layers: dict[str, Layer]
    store: Store | None = None

    async def synapses(self) -> list[Any]:
        """The dataset's ``synapses.json`` list (the demo writes one)."""
        doc = await read_json(self.store, "synapses.json") if self.store is not None else None
        if not isinstance(doc, dict) or not isinstance(doc.get("synapses"), list):
            raise NotFound(f"dataset {self.name!r} has no synapses.json")
        return list(doc["synapses"])

    def layer(self, name: str) -> Layer:
        found = self.layers.get(name)
        if found is None:
            raise NotFound(f"dataset {self.name!r} has no layer {name!r}")
        return found

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "layout": self.layout,
            "voxelSize": list(self.voxel_size),
            "layers": [layer.metadata() for layer in self.layers.values()],
        }


async def open_dataset(
    name: str,
    location: str,
    storage: ObjectStorage | None = None,
    health: StoreHealth | None = None,
) -> Dataset:
    """Open the dataset at ``location`` (a resolved path or URL); ``storage``
    configures ``s3://`` URLs, ``health`` collects remote failures. A URL
    with nothing under it is 404, as a missing folder is (collab/volume/roots.py)."""
    store = open_store(location, storage or ObjectStorage(), health)
    props = await read_json(store, WK_PROPERTIES)
    if props is not None:
        spec = parse_webknossos(props)
        layers = {}
        for layer_spec in spec.layers:
            layers[layer_spec.name] = await _open_layer(store, layer_spec)
        return Dataset(name, location, spec.layout, spec.voxel_size, layers, store)
    ome = await _ome_spec(store)
    if ome is None:
        if is_url(location) and await store.is_empty(""):
            raise NotFound(f"no dataset at {location!r}: nothing is stored there")
        raise LayoutError(
            f"{location}: neither {WK_PROPERTIES} nor an OME-Zarr zarr.json/.zattrs "
            "with multiscales was found"
        )
    layers = {}
    for layer_spec in ome.layers:
        layers[layer_spec.name] = await _open_layer(store, layer_spec)
    return Dataset(name, location, ome.layout, ome.voxel_size, layers, store)


async def _group_attrs(store: Store, prefix: str) -> tuple[str, Any] | None:
    key3 = f"{prefix}zarr.json"
    doc = await read_json(store, key3)
    if doc is not None:
        return key3, doc.get("attributes", {}) if isinstance(doc, dict) else {}
    key2 = f"{prefix}.zattrs"
    doc = await read_json(store, key2)
    if doc is not None:
        return key2, doc
    return None


async def _ome_spec(store: Store) -> DatasetSpec | None:
    found = await _group_attrs(store, "")
    if found is None:
        return None
    file, attrs = found
    multiscales = multiscales_of(attrs, file)
    if multiscales is None:
        return None
    image = parse_multiscale(multiscales, file)
    level0 = await _open(store, image.levels[0].path)
    color, voxel = ome_layer(
        "color", "color", image, tuple(level0.shape), _dtype_name(level0), file
    )
    _check_channels(image.axes, tuple(level0.shape), f"{image.levels[0].path}/zarr.json")
    layers = [color]
    labels = await _group_attrs(store, "labels/")
    if labels is not None:
        for label in labels_of(labels[1]):
            if label == "color" or "/" in label or label in ("", ".", ".."):
                raise LayoutError(f"{labels[0]}: label name {label!r} is not usable")
            lfile, lattrs = await _group_attrs(store, f"labels/{label}/") or (
                f"labels/{label}/zarr.json",
                None,
            )
            lms = multiscales_of(lattrs, lfile)
            if lms is None:
                raise LayoutError(f"{lfile}: label {label!r} has no multiscales")
            lmulti = parse_multiscale(lms, lfile)
            lmulti = type(lmulti)(
                lmulti.axes,
                tuple(
                    type(level)(
                        f"labels/{label}/{level.path}", level.scale_nm, level.translation_nm
                    )
                    for level in lmulti.levels
                ),
            )
            l0 = await _open(store, lmulti.levels[0].path)
            layer, _ = ome_layer(
                label, "segmentation", lmulti, tuple(l0.shape), _dtype_name(l0), lfile
            )
            layers.append(layer)
    return DatasetSpec("ome-zarr", voxel, tuple(layers))


def _check_channels(axes: tuple[str, ...], shape: tuple[int, ...], file: str) -> None:
    if "c" in axes and shape[axes.index("c")] != 1:
        raise LayoutError(f"{file}: shape: only single-channel images are served")


def _dtype_name(array: Any) -> str:
    return str(np.dtype(array.dtype).name)


async def _open(store: Store, path: str) -> Any:
    try:
        return await zasync.open_array(store=StorePath(store, path))
    except FileNotFoundError:
        raise LayoutError(f"{path}/zarr.json: the array is missing") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise LayoutError(f"{path}/zarr.json: not a readable zarr array ({exc})") from None


async def _open_layer(store: Store, spec: LayerSpec) -> Layer:
    sources: dict[Mag, MagSource] = {}
    dtype: np.dtype[Any] | None = numpy_dtype(spec.dtype) if spec.dtype else None
    assert spec.top_left is not None and spec.size is not None
    for mag_spec in spec.mags:
        array = await _open(store, mag_spec.path)
        file = f"{mag_spec.path}/zarr.json"
        if len(array.shape) != len(mag_spec.axes):
            raise LayoutError(
                f"{file}: shape: {len(array.shape)} dimensions, but the layout names "
                f"axes {list(mag_spec.axes)}"
            )
        found = numpy_dtype(_dtype_name(array))
        if dtype is None:
            dtype = found
        elif found != dtype:
            raise LayoutError(f"{file}: data_type: {found.name}, but the layer says {dtype.name}")
        mag = mag_spec.mag
        lo = tuple(spec.top_left[i] // mag[i] for i in range(3))
        hi = tuple(-(-(spec.top_left[i] + spec.size[i]) // mag[i]) for i in range(3))
        sources[mag] = MagSource(
            mag_spec,
            array,
            store,
            mag_spec.path,
            found,
            (lo[0], lo[1], lo[2]),
            (hi[0], hi[1], hi[2]),
        )
    assert dtype is not None
    if spec.category != "segmentation":
        return Layer(spec, dtype, sources, store)
    mappings, graphs = await _mappings(store, spec)
    return Layer(spec, dtype, sources, store, mappings, graphs)


async def _mappings(
    store: Store, spec: LayerSpec
) -> tuple[dict[str, str], dict[str, AgglomerateFile]]:
    """The layer's mappings: the agglomerate attachments its properties declare
    (zarr3 ones; hdf5 is not read), then what ``<layer>/agglomerates/`` holds."""
    mappings: dict[str, str] = {}
    graphs: dict[str, AgglomerateFile] = {}
    for attachment in spec.agglomerates:
        if attachment.data_format != "zarr3":
            continue
        doc = await read_json(store, f"{attachment.path}/zarr.json")
        if not isinstance(doc, dict) or doc.get("node_type") != "group":
            raise LayoutError(
                f"{attachment.path}/zarr.json: the agglomerate attachment "
                f"{attachment.name!r} is not a zarr v3 group"
            )
        mappings[attachment.name] = f"{attachment.path}/{SEGMENT_TO_AGGLOMERATE}"
        graphs[attachment.name] = AgglomerateFile(attachment.name, store, attachment.path)
    layer_dir = spec.mags[0].path.rsplit("/", 1)[0] if "/" in spec.mags[0].path else ""
    prefix = f"{layer_dir}/{MAPPINGS_DIR}" if layer_dir else MAPPINGS_DIR
    try:
        found = [entry.rstrip("/") async for entry in store.list_dir(prefix)]
    except (FileNotFoundError, NotImplementedError):
        found = []
    for name in sorted(found):
        if not name or name in mappings:
            continue
        path = f"{prefix}/{name}"
        doc = await read_json(store, f"{path}/zarr.json")
        if not isinstance(doc, dict):
            continue
        if doc.get("node_type") == "array":
            mappings[name] = path
        elif await read_json(store, f"{path}/{SEGMENT_TO_AGGLOMERATE}/zarr.json") is not None:
            mappings[name] = f"{path}/{SEGMENT_TO_AGGLOMERATE}"
            graphs[name] = AgglomerateFile(name, store, path)
    return mappings, graphs
