"""The column-wise reading of <nodes>/<edges> blocks gives exactly what the
exact (expat, element by element) reader gives, declines what it cannot read
strictly, and leaves errors to the exact reader, which names element and line."""

from __future__ import annotations

import random

import numpy as np
import pytest

from collab.skeleton import nml as nmlmod
from collab.skeleton import nml_tables
from collab.skeleton.nml import NmlError

WK_ORDER = (
    '<node id="{id}" radius="{r}" x="{x}" y="{y}" z="{z}" rotX="0.0" rotY="0.5" rotZ="0.0" '
    'inVp="1" inMag="2" bitDepth="8" interpolation="{i}" time="{t}" />'
)
ALPHABETICAL = (
    '<node bitDepth="8" id="{id}" inMag="1" inVp="0" interpolation="{i}" radius="{r}" '
    'rotX="0.2" rotY="0.2" rotZ="0.2" x="{x}" y="{y}" z="{z}" />'
)
MINIMAL = '<node id="{id}" x="{x}" y="{y}" z="{z}" />'


def _file(
    template: str, trees: int = 3, per_tree: int = 50, seed: int = 1, extra: str = ""
) -> bytes:
    rnd = random.Random(seed)
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<things>\n']
    node = 1
    for t in range(1, trees + 1):
        out.append(f'  <thing id="{t}" name="t{t}">\n    <nodes>\n')
        first = node
        for _ in range(per_tree):
            x = rnd.choice([f"{rnd.uniform(-1e4, 1e4):.3f}", str(rnd.randint(0, 9999)), "1.5e3"])
            out.append(
                "      "
                + template.format(
                    id=node,
                    r=f"{rnd.uniform(0.5, 9):.2f}",
                    x=x,
                    y=-node,
                    z=f"{node}.25",
                    i=rnd.choice(["true", "false", "True", "False"]),
                    t=1_700_000_000_000 + node,
                )
                + "\n"
            )
            node += 1
        out.append(extra.replace("ID", str(10_000 + t)))
        out.append("    </nodes>\n    <edges>\n")
        for k in range(first + 1, node):
            out.append(f'      <edge source="{rnd.randint(first, k - 1)}" target="{k}" />\n')
        out.append("    </edges>\n  </thing>\n")
    out.append("</things>\n")
    return "".join(out).encode()


def _exact(data: bytes, monkeypatch: pytest.MonkeyPatch) -> nmlmod.Nml:
    with monkeypatch.context() as m:
        m.setattr(nmlmod, "read_nodes", lambda block: None)
        m.setattr(nmlmod, "read_edges", lambda block: None)
        return nmlmod.read(data)


def _same(a: nmlmod.Nml, b: nmlmod.Nml) -> None:
    assert [t.id for t in a.trees] == [t.id for t in b.trees]
    for ta, tb in zip(a.trees, b.trees, strict=True):
        for column in nml_tables.NODE_DEFAULTS:
            got, want = getattr(ta.nodes, column), getattr(tb.nodes, column)
            assert got.dtype == want.dtype, column
            assert np.array_equal(got, want), column
        assert np.array_equal(ta.edges, tb.edges)


@pytest.mark.parametrize("template", [WK_ORDER, ALPHABETICAL, MINIMAL])
def test_fast_blocks_read_as_the_exact_reader_does(
    template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _file(template)
    calls: list[int] = []
    real = nml_tables.read_nodes

    def counting(block: bytes) -> nml_tables.NodeTable | None:
        table = real(block)
        calls.append(table is not None)
        return table

    monkeypatch.setattr(nmlmod, "read_nodes", counting)
    fast = nmlmod.read(data)
    assert calls and all(calls)  # every block was read column-wise
    monkeypatch.undo()
    _same(fast, _exact(data, monkeypatch))
    assert fast.node_count == 150


def test_tiny_chunks_and_pieces_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _file(WK_ORDER, trees=2, per_tree=300)
    whole = nmlmod.read(data)
    monkeypatch.setattr(nmlmod, "BLOCK_PIECE", 500)  # long blocks cut in many pieces
    for size in (7, 64, 4096):
        reader = nmlmod._Reader()
        for start in range(0, len(data), size):
            reader.feed(data[start : start + size])
        _same(reader.finish(), whole)


@pytest.mark.parametrize(
    "extra",
    [
        "      <!-- a comment: <node id='999' x='1' y='1' z='1'/> -->\n",
        '      <node id="ID" x="1" y="2" z="3"></node>\n',  # not self-closing
        "      <node id='ID' x='1' y='2' z='3'/>\n",  # single quotes
        '      <node id="ID" x="1" y="2" z="3" extra="yes" />\n',  # unknown attribute
        '      <node id="ID" x="+3." y="2" z="3" />\n',  # a number the fast reader does not take
        '      <node id="ID" x="1" y="2" z="3" inVp="2.0" />\n',  # an integer written as float
        "      text between elements\n",
        '      <node id="ID" z="3" y="2" x="1" />\n',  # another attribute order
    ],
)
def test_unusual_blocks_fall_back_to_the_exact_reader(
    extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _file(MINIMAL, trees=2, per_tree=20, extra=extra)
    _same(nmlmod.read(data), _exact(data, monkeypatch))


def test_nodes_tag_inside_a_comment_is_not_a_block() -> None:
    data = (
        b'<things><!-- <nodes> <node id="1" x="1" y="1" z="1" /> </nodes> -->'
        b'<thing id="1"><nodes><node id="2" x="1" y="2" z="3" /></nodes></thing></things>'
    )
    parsed = nmlmod.read(data)
    assert parsed.trees[0].nodes.id.tolist() == [2]


def _line_of(data: bytes, needle: bytes) -> int:
    return data[: data.index(needle)].count(b"\n") + 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('<node id="7" x="1" y="2" z="3" />', "duplicate node id 7"),
        ('<node id="9000" x="1" y="zz" z="3" />', "not a number"),
        ('<node id="9001" x="1" y="inf" z="3" />', "not finite"),
        ('<node id="9002" x="1" y="2" />', "missing attribute 'z'"),
        ('<node id="99999999999999999999" x="1" y="2" z="3" />', "out of range"),
    ],
)
def test_errors_in_fast_looking_blocks_name_element_and_line(bad: str, message: str) -> None:
    data = _file(MINIMAL, trees=3, per_tree=40, extra="      " + bad + "\n")
    with pytest.raises(NmlError) as caught:
        nmlmod.read(data)
    assert message in caught.value.message
    # The first tree's block holds the bad element (id 7 exists there already).
    assert caught.value.details["line"] == _line_of(data, bad.encode())


def test_duplicate_ids_across_fast_blocks_are_refused() -> None:
    data = _file(MINIMAL, trees=2, per_tree=10).replace(b'id="15"', b'id="3"')
    with pytest.raises(NmlError, match="duplicate node id 3") as caught:
        nmlmod.read(data)
    second = data.rindex(b'<node id="3" x=')
    assert caught.value.details["line"] == data[:second].count(b"\n") + 1


def test_self_edge_in_a_fast_block_names_its_line() -> None:
    data = _file(MINIMAL, trees=2, per_tree=10).replace(
        b'<edge source="', b'<edge source="4" target="4" />\n      <edge source="', 1
    )
    with pytest.raises(NmlError, match="self-edge on node 4") as caught:
        nmlmod.read(data)
    assert caught.value.details["line"] == _line_of(data, b'<edge source="4" target="4"')


def test_line_numbers_after_fast_blocks_are_right() -> None:
    data = _file(WK_ORDER, trees=3, per_tree=100).replace(b"</things>", b"<oops></things>")
    with pytest.raises(NmlError) as caught:
        nmlmod.read(data)
    assert caught.value.details["line"] == _line_of(data, b"<oops>")
