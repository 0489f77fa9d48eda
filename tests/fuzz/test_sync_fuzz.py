"""The sync socket, fuzzed: random and truncated frames, and valid updates
whose content breaks the schema (NULs anywhere, 100,000-character keys, deep
nesting, wrong JSON types in nodes, ids with commas, roots of other types).

Invariant for every input: the socket either goes on (a sync round trip
answers) or is closed with a documented code and a reason, never 1006 or
1011; the server stays up; a bystander's work is acknowledged afterwards."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from collab.skeleton.kind import SKELETON
from collab.sync import messages as m
from tests.fuzz.conftest import FUZZ, FUZZ_TIMEOUT, annotation, assert_still_saving, user
from tests.processes import ServerProcess

#: Codes a refusal of bad input may use (docs/protocol.md).
REFUSALS = {4400, 4422, 1009, 1012, 1013}

texts = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["\x00", "a\x00b", "1,2", "n1", "t1", ",", "k" * 100_000, "\U0010ffff"]),
)
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.floats(allow_nan=False), texts
)


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": value}
    return value


values = st.one_of(
    st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
        max_leaves=8,
    ),
    st.integers(1, 3000).map(_deep),
    st.fixed_dictionaries({"treeId": st.one_of(texts, leaves), "position": st.one_of(st.lists(leaves, max_size=4), leaves)}),
)  # fmt: skip
roots = st.sampled_from([*SKELETON.root_names, "x\x00", "other"])


@st.composite
def edits(draw: st.DrawFn) -> list[tuple[str, str, str, Any]]:
    """A transaction's worth of writes: (root, how, key, value)."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["set", "set", "map", "delete", "array", "text"]))
        out.append((draw(roots), how, draw(texts), draw(values)))
    return out


def _apply(doc: Doc, batch: list[tuple[str, str, str, Any]]) -> None:
    with doc.transaction():
        for root, how, key, value in batch:
            target = doc.get(root, type=Map)
            if how == "set":
                target[key] = value
            elif how == "map":
                target[key] = Map(value if isinstance(value, dict) else {"v": value})
            elif how == "delete":
                if key in target:
                    del target[key]
            elif how == "array":
                target[key] = Array([value])
            else:
                target[key] = Text(str(value)[:1000])


class Session:
    """One connection, reopened when the server closes it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        #: The room's whole state, as the last sync step 2 gave it.
        self.state = b""

    def open(self) -> ClientConnection:
        if self.ws is None:
            self.ws = connect(
                self.url, max_size=None, compression=None, open_timeout=10, ping_interval=None
            ).__enter__()
            self.ws.send(m.pack_sync_step1(b"\x00"))
            self._until_step2()
        return self.ws

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close()
            self.ws = None

    def _until_step2(self) -> None:
        assert self.ws is not None
        for _ in range(100_000):  # bounded
            frame = self.ws.recv(timeout=20)
            if isinstance(frame, bytes) and frame[:2] == bytes((0, 1)):
                self.state = m.read_varbytes(frame, 2)[0]
                return
        raise AssertionError("no sync step 2")

    def probe(self) -> int | None:
        """After the input: None when the socket goes on, else its close code."""
        ws = self.open()
        try:
            ws.send(m.pack_sync_step1(b"\x00"))
            self._until_step2()
            return None
        except ConnectionClosed as exc:
            self.ws = None
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            reason = exc.rcvd.reason if exc.rcvd is not None else ""
            assert code in REFUSALS, f"closed with {code} {reason!r}"
            assert reason, f"close {code} without a reason"
            return code


@pytest.fixture(scope="module")
def target(server: ServerProcess) -> tuple[str, int, int]:
    _, token = user(server)
    return token, annotation(server, token), annotation(server, token)


@pytest.mark.timeout(FUZZ_TIMEOUT)
def test_random_frames(server: ServerProcess, target: tuple[str, int, int]) -> None:
    token, ann, bystander = target
    session = Session(f"{server.ws_url}/sync/{ann}/skeleton?token={token}")
    valid = m.pack_update(b"\x00\x00")

    @FUZZ
    @given(
        frame=st.one_of(
            st.binary(max_size=64),
            st.binary(max_size=64).map(lambda b: bytes((0, 2)) + b),
            st.binary(max_size=64).map(lambda b: bytes((1,)) + b),
            st.integers(0, len(valid)).map(lambda n: valid[:n]),
            st.text(max_size=20),
        )
    )
    def attack(frame: bytes | str) -> None:
        ws = session.open()
        try:
            ws.send(frame)
        except ConnectionClosed:
            session.ws = None
        session.probe()

    attack()
    assert_still_saving(server, token, bystander)


#: Inputs written into one room before the next input goes to a fresh one.
#: Each probe answers the room's whole document (a sync step 1 from an empty
#: replica), and hostile inputs grow it ~12 KB each: one room for 100,000
#: inputs held 117 MB after 9,700 and the run slowed to ~3 inputs/s, every
#: probe sending the lot. A fresh room every 500 keeps what is measured the
#: server's handling of the input, not the y-protocol's full-state answer.
INPUTS_PER_ROOM = 500


@pytest.mark.timeout(FUZZ_TIMEOUT)
def test_schema_breaking_updates(server: ServerProcess, target: tuple[str, int, int]) -> None:
    token, ann, bystander = target
    rooms = [ann]
    session = Session(f"{server.ws_url}/sync/{ann}/skeleton?token={token}")
    inputs = 0

    @FUZZ
    @given(batch=edits())
    def attack(batch: list[tuple[str, str, str, Any]]) -> None:
        nonlocal session, inputs
        inputs += 1
        if inputs % INPUTS_PER_ROOM == 0:
            session.close()
            rooms.append(annotation(server, token))
            session = Session(f"{server.ws_url}/sync/{rooms[-1]}/skeleton?token={token}")
        ws = session.open()
        doc = Doc()  # a fresh replica each time: its update stands alone
        updates: list[bytes] = []
        sub = doc.observe(lambda e: updates.append(e.update))
        try:
            _apply(doc, batch)
        except Exception:
            return  # pycrdt itself refuses to build it: nothing to send
        finally:
            doc.unobserve(sub)
        try:
            for update in updates:
                ws.send(m.pack_update(update))
        except ConnectionClosed:
            session.ws = None
        session.probe()

    attack()
    assert_still_saving(server, token, bystander)
    for room in {rooms[0], rooms[-1]}:  # the first and the last fuzzed rooms
        assert_still_saving(server, token, room)


def test_oversized_frame_is_refused_with_a_reason(
    server: ServerProcess, target: tuple[str, int, int]
) -> None:
    token, _, _ = target
    ann = annotation(server, token)  # a room of its own, not the fuzzed one
    session = Session(f"{server.ws_url}/sync/{ann}/skeleton?token={token}")
    ws = session.open()
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    doc.get("comments", type=Map)["big"] = "x" * (21 << 20)
    with pytest.raises(ConnectionClosed) as closed:
        ws.send(m.pack_update(updates[0]))
        for _ in range(1000):  # bounded: frames sent before the refusal come first
            ws.recv(timeout=20)
    assert closed.value.rcvd is not None, "no close frame (a bare 1006)"
    assert closed.value.rcvd.code == 1009 and "exceeds limit" in closed.value.rcvd.reason
    assert_still_saving(server, token, ann)


#: Values an op's field may take: mostly plausible, sometimes hostile.
_coord = st.one_of(
    st.integers(0, 300), st.sampled_from([-1, 2**31 - 1, 2**31, 2**53, 1e300, 0.5, "7", None])
)
_point = st.one_of(st.lists(_coord, min_size=3, max_size=3), values)
_box = st.one_of(
    st.fixed_dictionaries({"topLeft": _point, "size": st.lists(st.integers(0, 80), min_size=3, max_size=3)}),
    values,
)  # fmt: skip


@st.composite
def voxel_ops(draw: st.DrawFn, author: int) -> tuple[str, Any]:
    """An op id and a voxel op: well formed but for what hypothesis breaks."""
    kind = draw(st.sampled_from(["brush", "fill2d", "fill3d", "eraseSegment", "interpolate", "x"]))
    op: dict[str, Any] = {
        "kind": kind, "layer": draw(st.sampled_from(["L1", "L1", "L9", ""])),
        "author": draw(st.one_of(st.just(author), st.just(author), values)),
        "time": draw(st.one_of(st.just(1.0), values)), "mag": draw(st.sampled_from(["1", "2", "4", "2-2-1", "x", ""])),
        "plane": draw(st.sampled_from(["xy", "xz", "yz", "q"])),
        "points": draw(st.lists(_point, min_size=0, max_size=6)),
        "radius": draw(st.one_of(st.integers(1, 12), values)), "segment": draw(st.one_of(st.integers(0, 2**32), values)),
        "erase": draw(st.one_of(st.booleans(), values)), "mode": draw(st.sampled_from(["all", "empty", "none"])),
        "seed": draw(_point), "box": draw(_box), "from": draw(_coord), "to": draw(_coord),
    }  # fmt: skip
    for name in draw(st.lists(st.sampled_from(sorted(op)), max_size=2)):
        if draw(st.booleans()):
            op.pop(name, None)  # the same name may be drawn twice
        else:
            op[name] = draw(values)
    key = draw(st.one_of(st.integers(1, 10**6).map(lambda n: f"f-{n}"), texts))
    return key, op


@pytest.mark.timeout(FUZZ_TIMEOUT)
def test_segmentation_ops(server: ServerProcess) -> None:
    """Hostile voxel ops into the segmentation document: refused with 4422
    and a reason, or taken and materialised; the materialiser keeps going
    (its failures are in the log check) and the volume stays readable."""
    import httpx

    author, token = user(server, "painter")
    bystander = annotation(server, token)
    rooms: list[int] = []
    session: Session | None = None
    inputs = 0
    layer = {"name": "L1", "dtype": "uint32", "mags": ["1", "2"],
             "boundingBox": {"topLeft": [0, 0, 0], "size": [512, 512, 512]}}  # fmt: skip

    #: The client's own document in the current room: its later updates
    #: build on it, so it can delete (undo) what it added before.
    mine = Doc()

    def fresh_room() -> Session:
        nonlocal mine
        rooms.append(annotation(server, token))
        s = Session(f"{server.ws_url}/sync/{rooms[-1]}/segmentation?token={token}")
        mine = Doc()
        updates: list[bytes] = []
        sub = mine.observe(lambda e: updates.append(e.update))
        mine.get("layers", type=Map)["L1"] = Map(layer)
        mine.unobserve(sub)
        s.open().send(m.pack_update(updates[0]))
        assert s.probe() is None
        return s

    @FUZZ
    @given(
        ops=st.lists(voxel_ops(author), min_size=0, max_size=3),
        undo=st.lists(st.integers(0, 50), max_size=2),
    )
    def attack(ops: list[tuple[str, Any]], undo: list[int]) -> None:
        nonlocal session, inputs, mine
        inputs += 1
        if session is None or inputs % INPUTS_PER_ROOM == 0:
            if session is not None:
                session.close()
            session = fresh_room()
        ws = session.open()
        updates: list[bytes] = []
        sub = mine.observe(lambda e: updates.append(e.update))
        try:
            with mine.transaction():
                held = mine.get("ops", type=Map)
                keys = sorted(held.keys())
                for i in undo:  # undo: delete ops this client added before
                    if keys and keys[i % len(keys)] in held:
                        del held[keys[i % len(keys)]]
                for key, op in ops:
                    held[key] = op
        except Exception:
            return  # pycrdt itself refuses to build it
        finally:
            mine.unobserve(sub)
        try:
            for update in updates:
                ws.send(m.pack_update(update))
        except ConnectionClosed:
            session.ws = None
        if session.probe() is not None:
            # Refused: this client's document holds what the room does not;
            # it starts again from the room's state (the reconnect's step 2).
            session.open()
            mine = Doc()
            mine.apply_update(session.state)

    attack()
    assert_still_saving(server, token, bystander)
    for room in {rooms[0], rooms[-1]}:  # their voxels are readable: materialised
        r = httpx.get(
            f"{server.url}/api/annotations/{room}/volume/L1/1/0/0/0",
            headers=server.headers(token),
            timeout=120,
        )
        assert r.status_code == 200, r.text
