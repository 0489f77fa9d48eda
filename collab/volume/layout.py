"""What a dataset folder says about itself: the two layouts we read.

Pure functions from the layout's JSON documents to :class:`DatasetSpec`; the
I/O (reading those documents, opening the arrays) is in ``dataset.py``.

* **WEBKNOSSOS**: ``datasource-properties.json`` lists layers (name, category,
  element class, bounding box in mag-1 voxels) and their mags, each a zarr
  array with axes ``c, x, y, z`` indexed in absolute voxels of that mag.
* **OME-Zarr / NGFF** (0.4 in zarr v2 ``.zattrs``, 0.5 in zarr v3
  ``zarr.json`` under ``attributes.ome``): ``multiscales`` with axes and
  per-level scale and translation. The image becomes the layer ``color``; each
  of its ``labels/`` becomes a segmentation layer named after the label.

Every refusal is a :class:`LayoutError` naming the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collab.errors import BadRequest, LayoutError
from collab.volume.mags import Mag, mag_of

WK_PROPERTIES = "datasource-properties.json"
SPATIAL = ("x", "y", "z")

#: Element classes WEBKNOSSOS writes, in numpy's spelling.
ELEMENT_CLASSES = {
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "float": "float32",
    "float32": "float32",
    "double": "float64",
    "float64": "float64",
}
SEGMENT_DTYPES = {"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"}

#: Units NGFF allows for space axes, as nanometres per unit.
UNIT_NM = {
    "nanometer": 1.0,
    "micrometer": 1000.0,
    "millimeter": 1e6,
    "meter": 1e9,
    "angstrom": 0.1,
    "picometer": 1e-3,
    None: 1.0,
}


@dataclass(frozen=True, slots=True)
class MagSpec:
    mag: Mag
    #: Path of the zarr array, relative to the dataset's root.
    path: str
    #: The array's axis names, e.g. ``("c", "x", "y", "z")`` or ``("z", "y", "x")``.
    axes: tuple[str, ...]
    #: Absolute voxel coordinate (in voxels of this mag) of the array's index 0, x/y/z.
    origin: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True, slots=True)
class AttachmentSpec:
    """One entry of a layer's ``attachments`` in ``datasource-properties.json``."""

    name: str
    #: Relative to the dataset's root (``./`` dropped).
    path: str
    #: ``"zarr3"``, ``"hdf5"`` or ``"json"``: only zarr3 is read here.
    data_format: str


@dataclass(frozen=True, slots=True)
class LayerSpec:
    name: str
    category: str
    dtype: str | None
    top_left: tuple[int, int, int] | None
    size: tuple[int, int, int] | None
    mags: tuple[MagSpec, ...]
    #: Named supervoxel→agglomerate mappings (segmentation layers).
    mappings: tuple[str, ...] = ()
    #: The largest segment id in the layer, as its properties say (segmentation
    #: layers; None when they do not): new segment ids start above it.
    largest_segment_id: int | None = None
    #: Agglomerate attachments the properties declare (``attachments.agglomerates``).
    agglomerates: tuple[AttachmentSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    layout: str
    voxel_size: tuple[float, float, float]
    layers: tuple[LayerSpec, ...]
    extra: dict[str, Any] = field(default_factory=dict)


def _need(doc: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(doc, dict) or key not in doc:
        raise LayoutError(f"{where}: field {key!r} is missing")
    return doc[key]


def _ints(value: Any, where: str, n: int = 3, minimum: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != n:
        raise LayoutError(f"{where}: expected a list of {n} integers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not float(v).is_integer():
            raise LayoutError(f"{where}: expected integers, got {value!r}")
        if minimum is not None and v < minimum:
            raise LayoutError(f"{where}: values must be >= {minimum}, got {value!r}")
        out.append(int(v))
    return tuple(out)


def _numbers(value: Any, where: str, n: int) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != n:
        raise LayoutError(f"{where}: expected a list of {n} numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise LayoutError(f"{where}: expected finite numbers, got {value!r}")
        out.append(float(v))
    return tuple(out)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise LayoutError(f"{where}: expected a non-empty name, got {value!r}")
    if "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
        raise LayoutError(f"{where}: layer name {value!r} may not contain a path")
    return value


def _relative_path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise LayoutError(f"{where}: expected a relative path, got {value!r}")
    path = value.removeprefix("./")
    parts = path.split("/")
    if path.startswith("/") or "://" in path or any(p in ("", ".", "..") for p in parts):
        raise LayoutError(f"{where}: path {value!r} must stay inside the dataset")
    return path


# -- WEBKNOSSOS ---------------------------------------------------------------


def parse_webknossos(doc: Any, file: str = WK_PROPERTIES) -> DatasetSpec:
    if not isinstance(doc, dict):
        raise LayoutError(f"{file}: expected a JSON object")
    scale = _need(doc, "scale", file)
    unit = "nanometer"
    if isinstance(scale, dict):
        factor = _numbers(_need(scale, "factor", f"{file}: scale"), f"{file}: scale.factor", 3)
        unit = scale.get("unit", "nanometer")
        if unit not in UNIT_NM or unit is None:
            raise LayoutError(f"{file}: scale.unit {unit!r} is not a length unit")
    else:
        factor = _numbers(scale, f"{file}: scale", 3)
    voxel = tuple(f * UNIT_NM[unit] for f in factor)
    if any(v <= 0 for v in voxel):
        raise LayoutError(f"{file}: scale must be positive, got {list(factor)}")
    layers_doc = _need(doc, "dataLayers", file)
    if not isinstance(layers_doc, list) or not layers_doc:
        raise LayoutError(f"{file}: dataLayers must be a non-empty list")
    layers = []
    seen: set[str] = set()
    for i, layer in enumerate(layers_doc):
        where = f"{file}: dataLayers[{i}]"
        name = _name(_need(layer, "name", where), f"{where}.name")
        if name in seen:
            raise LayoutError(f"{where}.name: duplicate layer {name!r}")
        seen.add(name)
        layers.append(_wk_layer(layer, name, f"{file}: dataLayers[{i}] ({name})"))
    return DatasetSpec("webknossos", (voxel[0], voxel[1], voxel[2]), tuple(layers))


def _wk_layer(layer: dict[str, Any], name: str, where: str) -> LayerSpec:
    category = _need(layer, "category", where)
    if category not in ("color", "segmentation"):
        raise LayoutError(f"{where}.category: expected 'color' or 'segmentation', got {category!r}")
    fmt = layer.get("dataFormat", "zarr3")
    if fmt not in ("zarr3", "zarr"):
        raise LayoutError(
            f"{where}.dataFormat: {fmt!r} is not read here; convert the layer to zarr3"
        )
    element = _need(layer, "elementClass", where)
    dtype = ELEMENT_CLASSES.get(element)
    if dtype is None:
        raise LayoutError(f"{where}.elementClass: {element!r} is not supported")
    if category == "segmentation" and dtype not in SEGMENT_DTYPES:
        raise LayoutError(f"{where}.elementClass: segmentation needs integers, got {element!r}")
    channels = layer.get("numChannels", 1)
    if channels != 1:
        raise LayoutError(f"{where}.numChannels: only single-channel layers are served")
    if layer.get("additionalAxes"):
        raise LayoutError(f"{where}.additionalAxes: layers with extra axes are not served")
    bbox = _need(layer, "boundingBox", where)
    top_left = _ints(_need(bbox, "topLeft", f"{where}.boundingBox"), f"{where}.boundingBox.topLeft")
    size = tuple(
        _ints([_need(bbox, k, f"{where}.boundingBox")], f"{where}.boundingBox.{k}", 1, 0)[0]
        for k in ("width", "height", "depth")
    )
    mags_doc = _need(layer, "mags", where)
    if not isinstance(mags_doc, list) or not mags_doc:
        raise LayoutError(f"{where}.mags: expected a non-empty list")
    mags: list[MagSpec] = []
    for j, entry in enumerate(mags_doc):
        mwhere = f"{where}.mags[{j}]"
        try:
            mag = mag_of(_need(entry, "mag", mwhere))
        except BadRequest as exc:
            raise LayoutError(f"{mwhere}.mag: {exc.message}") from None
        path = _relative_path(entry.get("path") or f"{name}/{mag}", f"{mwhere}.path")
        order = entry.get("axisOrder") or {"c": 0, "x": 1, "y": 2, "z": 3}
        axes = _axes_from_order(order, f"{mwhere}.axisOrder")
        if any(m.mag == mag for m in mags):
            raise LayoutError(f"{mwhere}.mag: mag {mag} is listed twice")
        mags.append(MagSpec(mag, path, axes))
    mags.sort(key=lambda m: m.mag.volume)
    if mags[0].mag != Mag(1, 1, 1):
        # A layer without mag 1 is legal; bricks of the listed mags still work.
        pass
    mappings = tuple(
        _name(m, f"{where}.mappings") for m in layer.get("mappings", []) if isinstance(m, str)
    )
    largest = layer.get("largestSegmentId")
    agglomerates = _attachments(layer.get("attachments"), "agglomerates", f"{where}.attachments")
    return LayerSpec(
        name,
        category,
        dtype,
        (top_left[0], top_left[1], top_left[2]),
        (size[0], size[1], size[2]),
        tuple(mags),
        mappings,
        largest
        if isinstance(largest, int) and not isinstance(largest, bool) and largest >= 0
        else None,
        agglomerates,
    )


#: Attachment formats WEBKNOSSOS declares (only zarr3 agglomerates are read here).
ATTACHMENT_FORMATS = ("zarr3", "hdf5", "json")


def _attachments(doc: Any, kind: str, where: str) -> tuple[AttachmentSpec, ...]:
    """The ``kind`` list of a layer's ``attachments`` (absent or null: none)."""
    if doc is None:
        return ()
    if not isinstance(doc, dict):
        raise LayoutError(f"{where}: expected an object")
    entries = doc.get(kind)
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise LayoutError(f"{where}.{kind}: expected a list")
    out: list[AttachmentSpec] = []
    for i, entry in enumerate(entries):
        ewhere = f"{where}.{kind}[{i}]"
        name = _name(_need(entry, "name", ewhere), f"{ewhere}.name")
        if any(a.name == name for a in out):
            raise LayoutError(f"{ewhere}.name: {name!r} is listed twice")
        fmt = _need(entry, "dataFormat", ewhere)
        if fmt not in ATTACHMENT_FORMATS:
            raise LayoutError(f"{ewhere}.dataFormat: expected one of {list(ATTACHMENT_FORMATS)}")
        path = _relative_path(_need(entry, "path", ewhere), f"{ewhere}.path")
        out.append(AttachmentSpec(name, path, fmt))
    return tuple(out)


def _axes_from_order(order: Any, where: str) -> tuple[str, ...]:
    if not isinstance(order, dict) or not all(k in order for k in SPATIAL):
        raise LayoutError(f"{where}: expected positions of x, y and z, got {order!r}")
    positions: dict[int, str] = {}
    for key, pos in order.items():
        if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < 8:
            raise LayoutError(f"{where}.{key}: expected an axis position, got {pos!r}")
        if pos in positions:
            raise LayoutError(f"{where}: two axes at position {pos}")
        positions[pos] = str(key)
    if sorted(positions) != list(range(len(positions))):
        raise LayoutError(f"{where}: axis positions must be 0..{len(positions) - 1}")
    return tuple(positions[p] for p in sorted(positions))


# -- OME-Zarr ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Level:
    path: str
    #: Physical size of one voxel per x/y/z, in nanometres.
    scale_nm: tuple[float, float, float]
    #: Physical position of voxel 0 per x/y/z, in nanometres.
    translation_nm: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Multiscale:
    axes: tuple[str, ...]
    levels: tuple[Level, ...]


def multiscales_of(attrs: Any, file: str) -> list[Any] | None:
    """The ``multiscales`` list of a group's attributes (NGFF 0.4 or 0.5), or None."""
    if not isinstance(attrs, dict):
        return None
    ome = attrs.get("ome")
    if isinstance(ome, dict) and "multiscales" in ome:
        found = ome["multiscales"]
    elif "multiscales" in attrs:
        found = attrs["multiscales"]
    else:
        return None
    if not isinstance(found, list) or not found:
        raise LayoutError(f"{file}: multiscales must be a non-empty list")
    return found


def labels_of(attrs: Any) -> list[str]:
    if not isinstance(attrs, dict):
        return []
    ome = attrs.get("ome")
    found = ome.get("labels") if isinstance(ome, dict) else attrs.get("labels")
    return [x for x in found if isinstance(x, str)] if isinstance(found, list) else []


def _transforms(entries: Any, where: str, ndim: int) -> tuple[list[float], list[float]]:
    scale = [1.0] * ndim
    translation = [0.0] * ndim
    if entries is None:
        return scale, translation
    if not isinstance(entries, list):
        raise LayoutError(f"{where}: coordinateTransformations must be a list")
    for k, t in enumerate(entries):
        kind = t.get("type") if isinstance(t, dict) else None
        if kind == "scale":
            values = _numbers(_need(t, "scale", f"{where}[{k}]"), f"{where}[{k}].scale", ndim)
            if any(v <= 0 for v in values):
                raise LayoutError(f"{where}[{k}].scale: values must be positive")
            scale = [a * b for a, b in zip(scale, values, strict=True)]
        elif kind == "translation":
            values = _numbers(
                _need(t, "translation", f"{where}[{k}]"), f"{where}[{k}].translation", ndim
            )
            translation = [a + b for a, b in zip(translation, values, strict=True)]
        elif kind == "identity":
            continue
        else:
            raise LayoutError(f"{where}[{k}].type: {kind!r} is not scale or translation")
    return scale, translation


def parse_multiscale(multiscales: list[Any], file: str) -> Multiscale:
    ms = multiscales[0]
    where = f"{file}: multiscales[0]"
    if not isinstance(ms, dict):
        raise LayoutError(f"{where}: expected an object")
    axes_doc = _need(ms, "axes", where)
    if not isinstance(axes_doc, list) or not axes_doc:
        raise LayoutError(f"{where}.axes: expected a list")
    names: list[str] = []
    units: dict[str, Any] = {}
    for i, axis in enumerate(axes_doc):
        name = axis.get("name") if isinstance(axis, dict) else axis
        if not isinstance(name, str) or name in names:
            raise LayoutError(f"{where}.axes[{i}]: expected a unique axis name, got {axis!r}")
        names.append(name)
        if isinstance(axis, dict):
            units[name] = axis.get("unit")
    if not all(a in names for a in SPATIAL):
        raise LayoutError(f"{where}.axes: needs x, y and z, got {names}")
    for a in names:
        if a not in (*SPATIAL, "c", "t"):
            raise LayoutError(f"{where}.axes: axis {a!r} is not served (x, y, z, c, t only)")
    factor = []
    for a in SPATIAL:
        unit = units.get(a)
        if unit not in UNIT_NM:
            raise LayoutError(f"{where}.axes: unit {unit!r} of {a} is not a length unit")
        factor.append(UNIT_NM[unit])
    ndim = len(names)
    global_scale, global_translation = _transforms(
        ms.get("coordinateTransformations"), f"{where}.coordinateTransformations", ndim
    )
    datasets = _need(ms, "datasets", where)
    if not isinstance(datasets, list) or not datasets:
        raise LayoutError(f"{where}.datasets: expected a non-empty list")
    levels = []
    for i, entry in enumerate(datasets):
        dwhere = f"{where}.datasets[{i}]"
        path = _relative_path(_need(entry, "path", dwhere), f"{dwhere}.path")
        scale, translation = _transforms(
            entry.get("coordinateTransformations"), f"{dwhere}.coordinateTransformations", ndim
        )
        s = [a * b for a, b in zip(scale, global_scale, strict=True)]
        t = [
            a * g + b for a, g, b in zip(translation, global_scale, global_translation, strict=True)
        ]
        idx = [names.index(a) for a in SPATIAL]
        levels.append(
            Level(
                path,
                (s[idx[0]] * factor[0], s[idx[1]] * factor[1], s[idx[2]] * factor[2]),
                (t[idx[0]] * factor[0], t[idx[1]] * factor[1], t[idx[2]] * factor[2]),
            )
        )
    return Multiscale(tuple(names), tuple(levels))


def ome_layer(
    name: str,
    category: str,
    ms: Multiscale,
    level0_shape: tuple[int, ...],
    dtype: str,
    file: str,
) -> tuple[LayerSpec, tuple[float, float, float]]:
    """A layer from a multiscale image whose level-0 array has ``level0_shape``."""
    base = ms.levels[0]
    voxel = base.scale_nm
    mags: list[MagSpec] = []
    idx = [ms.axes.index(a) for a in SPATIAL]
    top_left = tuple(round(base.translation_nm[i] / voxel[i]) for i in range(3))
    for i, level in enumerate(ms.levels):
        ratio = [level.scale_nm[k] / voxel[k] for k in range(3)]
        factors = []
        for r in ratio:
            # Writers derive a level's scale from its rounded shape (90 / 22 gives
            # 4.09), so the nearest power of two within 12.5 % is the factor.
            f = 1 << max(0, round(math.log2(r))) if r > 0 else 0
            if f < 1 or abs(r - f) > 0.125 * f:
                raise LayoutError(
                    f"{file}: multiscales[0].datasets[{i}]: scale ratio {r:g} to level 0 "
                    "is not a power of two"
                )
            factors.append(f)
        mag = Mag(factors[0], factors[1], factors[2])
        if any(m.mag == mag for m in mags):
            raise LayoutError(f"{file}: multiscales[0].datasets[{i}]: mag {mag} appears twice")
        origin = (top_left[0] // mag.x, top_left[1] // mag.y, top_left[2] // mag.z)
        mags.append(MagSpec(mag, level.path, ms.axes, origin))
    if category == "segmentation" and dtype not in SEGMENT_DTYPES:
        raise LayoutError(f"{file}: label {name!r} has dtype {dtype}, expected integers")
    size = tuple(int(level0_shape[i]) for i in idx)
    layer = LayerSpec(
        name,
        category,
        dtype,
        (top_left[0], top_left[1], top_left[2]),
        (size[0], size[1], size[2]),
        tuple(mags),
    )
    return layer, voxel


def numpy_dtype(name: str) -> np.dtype[Any]:
    return np.dtype(name).newbyteorder("<")
