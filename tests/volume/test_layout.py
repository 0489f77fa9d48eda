"""Pure layout parsing: mags, WEBKNOSSOS properties, NGFF multiscales, refusals
naming the file and the field; root resolution."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from collab.errors import BadRequest, Forbidden, LayoutError, NotFound
from collab.volume.layout import multiscales_of, ome_layer, parse_multiscale, parse_webknossos
from collab.volume.mags import Mag, mag_of, parse_mag
from collab.volume.roots import resolve


def test_mags() -> None:
    assert parse_mag("2") == Mag(2, 2, 2) and str(Mag(2, 2, 2)) == "2"
    assert parse_mag("2-2-1") == Mag(2, 2, 1) and str(Mag(2, 2, 1)) == "2-2-1"
    assert parse_mag("4,4,2") == Mag(4, 4, 2) == mag_of([4, 4, 2]) == mag_of([4.0, 4.0, 2.0])
    for bad in ("3", "0", "-1", "2-2", "a", "1-1-1-1", "2" * 9, ""):
        with pytest.raises(BadRequest):
            parse_mag(bad)
    with pytest.raises(BadRequest):
        mag_of(True)


WK = {
    "scale": {"factor": [4, 4, 40], "unit": "nanometer"},
    "dataLayers": [
        {
            "name": "color",
            "category": "color",
            "elementClass": "uint8",
            "boundingBox": {"topLeft": [1, 2, 3], "width": 10, "height": 20, "depth": 30},
            "mags": [{"mag": [2, 2, 1]}, {"mag": [1, 1, 1], "path": "./color/1"}],
        }
    ],
}


def test_webknossos_properties() -> None:
    spec = parse_webknossos(WK)
    layer = spec.layers[0]
    assert spec.voxel_size == (4.0, 4.0, 40.0)
    assert layer.top_left == (1, 2, 3) and layer.size == (10, 20, 30)
    assert [m.mag for m in layer.mags] == [Mag(1, 1, 1), Mag(2, 2, 1)]
    assert [m.path for m in layer.mags] == ["color/1", "color/2-2-1"]
    assert layer.mags[0].axes == ("c", "x", "y", "z")
    micrometres = parse_webknossos(
        {**WK, "scale": {"factor": [0.004, 0.004, 0.04], "unit": "micrometer"}}
    )
    assert micrometres.voxel_size == pytest.approx((4.0, 4.0, 40.0))
    assert parse_webknossos({**WK, "scale": [5, 5, 5]}).voxel_size == (5.0, 5.0, 5.0)


def _layer(**changes: object) -> dict:
    return {**WK, "dataLayers": [{**WK["dataLayers"][0], **changes}]}  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ([], "expected a JSON object"),
        ({"dataLayers": []}, "'scale' is missing"),
        ({**WK, "scale": [1, 1]}, "scale"),
        ({**WK, "scale": {"factor": [1, 1, 1], "unit": "parsec"}}, "scale.unit"),
        ({**WK, "dataLayers": []}, "dataLayers must be a non-empty list"),
        (_layer(category="raw"), "dataLayers[0] (color).category"),
        (_layer(dataFormat="wkw"), "dataFormat: 'wkw'"),
        (_layer(elementClass="uint24"), "elementClass"),
        (_layer(category="segmentation", elementClass="float"), "segmentation needs integers"),
        (_layer(numChannels=3), "numChannels"),
        (_layer(boundingBox={"topLeft": [0, 0]}), "boundingBox.topLeft"),
        (_layer(boundingBox={"topLeft": [0, 0, 0], "width": 1, "height": 1}), "'depth' is missing"),
        (_layer(mags=[]), "mags"),
        (_layer(mags=[{"mag": 3}]), "mags[0].mag"),
        (_layer(mags=[{"mag": 1, "path": "../../etc"}]), "must stay inside the dataset"),
        (_layer(mags=[{"mag": 1, "path": "/abs"}]), "must stay inside the dataset"),
        (_layer(mags=[{"mag": 1}, {"mag": [1, 1, 1]}]), "listed twice"),
        (_layer(name="a/b"), "may not contain a path"),
        ({**WK, "dataLayers": [WK["dataLayers"][0], WK["dataLayers"][0]]}, "duplicate layer"),  # type: ignore[index]
    ],
)
def test_webknossos_refusals_name_file_and_field(doc: object, needle: str) -> None:
    with pytest.raises(LayoutError) as info:
        parse_webknossos(doc)
    assert info.value.message.startswith("datasource-properties.json")
    assert needle in info.value.message


NGFF = {
    "ome": {
        "version": "0.5",
        "multiscales": [
            {
                "axes": [
                    {"name": "c", "type": "channel"},
                    {"name": "z", "type": "space", "unit": "micrometer"},
                    {"name": "y", "type": "space", "unit": "micrometer"},
                    {"name": "x", "type": "space", "unit": "micrometer"},
                ],
                "datasets": [
                    {
                        "path": str(i),
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [1, 0.04, 0.008 * 2**i, 0.008 * 2**i]},
                            {"type": "translation", "translation": [0, 0.4, 0.08, 0.16]},
                        ],
                    }
                    for i in range(3)
                ],
            }
        ],
    }
}


def test_ngff_multiscales_and_translation() -> None:
    ms = parse_multiscale(multiscales_of(NGFF, "zarr.json") or [], "zarr.json")
    layer, voxel = ome_layer("color", "color", ms, (1, 50, 300, 400), "uint16", "zarr.json")
    assert voxel == pytest.approx((8.0, 8.0, 40.0))
    assert layer.top_left == (20, 10, 10)  # translation / level-0 scale, x y z
    assert layer.size == (400, 300, 50)
    assert [str(m.mag) for m in layer.mags] == ["1", "2-2-1", "4-4-1"]
    assert layer.mags[1].origin == (10, 5, 10)
    assert multiscales_of({"multiscales": [{"x": 1}]}, "f") == [{"x": 1}]  # NGFF 0.4
    assert multiscales_of({}, "f") is None


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"axes": [{"name": "y"}, {"name": "x"}]}, "needs x, y and z"),
        ({"axes": [{"name": "q"}, {"name": "z"}, {"name": "y"}, {"name": "x"}]}, "not served"),
        ({"datasets": []}, "datasets"),
        ({"datasets": [{"path": "../x"}]}, "must stay inside"),
    ],
)
def test_ngff_refusals(change: dict, needle: str) -> None:
    ms = {**NGFF["ome"]["multiscales"][0], **change}  # type: ignore[index]
    with pytest.raises(LayoutError) as info:
        parse_multiscale([ms], "img/zarr.json")
    assert info.value.message.startswith("img/zarr.json") and needle in info.value.message


def test_ngff_scale_must_be_a_power_of_two() -> None:
    ms = NGFF["ome"]["multiscales"][0]  # type: ignore[index]
    bad = {
        **ms,
        "datasets": [
            ms["datasets"][0],
            {
                **ms["datasets"][1],
                "coordinateTransformations": [{"type": "scale", "scale": [1, 0.04, 0.024, 0.024]}],
            },
        ],
    }
    parsed = parse_multiscale([bad], "zarr.json")
    with pytest.raises(LayoutError, match="power of two"):
        ome_layer("color", "color", parsed, (1, 5, 5, 5), "uint8", "zarr.json")


def test_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "ds").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "link")
    roots = (str(root), "s3://bucket/em/")
    assert resolve("ds", roots) == str((root / "ds").resolve())
    assert resolve(str(root / "ds"), roots) == str((root / "ds").resolve())
    assert resolve(f"file://{root}/ds", roots) == str((root / "ds").resolve())
    assert resolve("s3://bucket/em/ds", roots) == "s3://bucket/em/ds"
    assert resolve("s3://bucket/em/ds/", roots) == "s3://bucket/em/ds"
    assert resolve("s3://bucket/em", roots) == "s3://bucket/em"
    for malformed in (
        "s3://bucket/em/ds?x=1",
        "s3://bucket/em/d#s",
        "s3://bucket/em/\\ds",
        "s3://bucket/em/d\ns",
    ):
        with pytest.raises(BadRequest):
            resolve(malformed, roots)
    for bad in (
        "s3://bucket/emx/ds",
        "s3://bucket/em//ds",
        "s3://bucket/em/./ds",
        "S3://bucket/em/ds",
        "../elsewhere",
        "link",
        str(tmp_path / "elsewhere"),
        "s3://bucket/other",
        "s3://bucket/em/../x",
        "gs://bucket/em/ds",
    ):
        with pytest.raises(Forbidden):
            resolve(bad, roots)
    with pytest.raises(NotFound):
        resolve("nothing", roots)
    with pytest.raises(BadRequest):
        resolve("", roots)
