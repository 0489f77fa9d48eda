"""Interop with the `webknossos` Python library (AGPL: used here only, in its
own virtual environment, never imported by collab): its NML imports, and its
``Skeleton.load`` reads our export back with the same content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collab.skeleton import nml as nmlmod
from collab.skeleton.convert import export_nml, import_nml
from collab.skeleton.kind import SKELETON
from collab.skeleton.model import Skeleton
from tests.conftest import LiveServer
from tests.venvs import WEBKNOSSOS, run_script, tool_python
from tests.yclient import YClient, put_node

# Creating a tool venv on a fresh machine downloads its packages: minutes, once.
pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).parent / "wk"


@pytest.fixture(scope="session")
def wk_python() -> Path:
    return tool_python(WEBKNOSSOS)


def _run(python: Path, script: str, *args: str) -> str:
    return run_script(python, HERE / script, *args)


def test_webknossos_output_imports(wk_python: Path, tmp_path: Path) -> None:
    path = tmp_path / "wk.nml"
    _run(wk_python, "write_skeleton.py", str(path))
    sk = Skeleton(SKELETON.new_doc())
    result = import_nml(sk, nmlmod.read(path.read_bytes()))
    assert result.trees == 3 and result.nodes == 4
    trees = {t.name: t for t in sk.iter_trees()}
    groups = {g.id: g for g in sk.iter_groups()}
    assert groups[trees["axon"].group_id or ""].name == "cells"
    assert groups[trees["empty"].group_id or ""].name == "layer 4"
    axon_nodes = sorted(
        (n.position, n.radius) for n in sk.iter_nodes() if n.tree_id == trees["axon"].id
    )
    assert axon_nodes == [((10, 20, 30), 2.5), ((11, 21, 31), 1.5), ((12, 22, 32), 1.0)]
    assert sorted(sk.comments.values()) == ["lonely", "soma"] and len(sk.branchpoints) == 1
    assert len(sk.edges) == 2 and sk.meta["voxelSize"] == [11, 11, 25]


def test_webknossos_reads_our_export(wk_python: Path, tmp_path: Path) -> None:
    sk = Skeleton(SKELETON.new_doc())
    sk.set_meta(voxelSize=[11, 11, 25], dataset="cortex")
    sk.create_group("g-1", name="cells")
    sk.create_group("g-2", name="layer 4", parent_id="g-1")
    sk.create_tree("c-1", name="axon", group_id="g-2", color=[0, 1, 0, 1])
    sk.add_node("c-1", [10, 20, 30], "c-n1", radius=2.5)
    sk.add_node("c-1", [11, 21, 31], "c-n2", radius=1.5, connect_to="c-n1")
    sk.add_node("c-1", [12, 22, 32], "c-n3", connect_to="c-n2")
    sk.create_tree("7", name="dendrite")
    sk.add_node("7", [1, 2, 3], "42")
    sk.set_comment("c-n1", "soma & <synapse>")
    sk.set_branchpoint("c-n2", 1700000000000)
    sk.add_bounding_box([0, 0, 0], [100, 200, 300], name="roi")
    path = tmp_path / "ours.nml"
    path.write_text("".join(nmlmod.write(export_nml(sk))))
    seen = json.loads(_run(wk_python, "read_skeleton.py", str(path)))
    assert seen["groups"] == [["cells", None], ["layer 4", "cells"]]
    assert seen["boxes"] == [["roi", [0.0, 0.0, 0.0], [100.0, 200.0, 300.0]]]
    trees = {t["name"]: t for t in seen["trees"]}
    assert trees["axon"]["group"] == "layer 4" and trees["dendrite"]["group"] == "Root"
    assert trees["axon"]["nodes"] == [
        [[10.0, 20.0, 30.0], 2.5, "soma & <synapse>", False],
        [[11.0, 21.0, 31.0], 1.5, None, True],
        [[12.0, 22.0, 32.0], 1.0, None, False],
    ]
    assert trees["axon"]["edges"] == [
        [[10.0, 20.0, 30.0], [11.0, 21.0, 31.0]],
        [[11.0, 21.0, 31.0], [12.0, 22.0, 32.0]],
    ]
    assert trees["dendrite"]["nodes"] == [[[1.0, 2.0, 3.0], 1.0, None, False]]


async def test_webknossos_loads_export_of_annotation_without_dataset(
    live: LiveServer, wk_python: Path, tmp_path: Path
) -> None:
    """An annotation created with no dataset (no voxel size known) exports an
    NML that ``webknossos.Skeleton.load`` takes: it has a <scale>, as
    WEBKNOSSOS writes one (it refused the file before)."""
    _, token = await live.user()
    ann = await live.annotation(token, "no dataset")
    writer = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    put_node(writer, "n1", {"treeId": "t1", "position": [1, 2, 3], "radius": 2.0})
    put_node(writer, "n2", {"treeId": "t1", "position": [4, 5, 6], "radius": 1.0})
    with writer.doc.transaction():
        writer.map("edges")["n1,n2"] = True
    await writer.wait(lambda: writer.saved >= 2)
    async with live.client(token) as http:
        r = await http.get(f"/api/annotations/{ann}/nml")
        assert r.status_code == 200, r.text
    path = tmp_path / "no-dataset.nml"
    path.write_bytes(r.content)
    assert b"<scale " in r.content
    seen = json.loads(_run(wk_python, "read_skeleton.py", str(path)))
    (tree,) = seen["trees"]
    assert [n[0] for n in tree["nodes"]] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert tree["edges"] == [[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]
    await writer.close()
