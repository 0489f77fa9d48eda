"""Repairs do not depend on arrival order: the room's incremental repair,
fed the replicas' updates one by one in any order, ends where one repair of
the whole merged document ends (docs/schema.md, "Repair and arrival
order"); replicas that see the room's repairs and build on them lose
nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Map, TransactionEvent

from collab.document.content import to_json
from collab.document.log import RoomKey, UpdateRecord
from collab.skeleton.kind import SKELETON
from collab.skeleton.model import Skeleton
from collab.skeleton.repair import RECOVERED, SkeletonRepairer, repair_all, violations
from collab.sync import messages as m
from collab.sync.room import PeerState, Room
from tests.skeleton.test_repair import OPS, _apply_op, base_doc, replica, sync


class Log:
    """The room's sink: keeps the records (what the committer would store)."""

    refusing_writes = False
    failure = None

    def __init__(self) -> None:
        self.records: list[UpdateRecord] = []

    def submit(self, record: UpdateRecord) -> None:
        self.records.append(record)


def _room(base: bytes, **repairer: Any) -> Room:
    doc = SKELETON.new_doc(base)
    return Room(
        RoomKey(1, "skeleton"),
        doc,
        0,
        Log(),
        kind=SKELETON,
        snapshot_every=1000,
        repairer=SkeletonRepairer(doc, **repairer),
    )


def _whole(base: bytes, updates: list[bytes]) -> dict[str, Any]:
    doc = SKELETON.new_doc(base)
    for update in updates:
        doc.apply_update(update)
    repair_all(doc)
    return to_json(doc, SKELETON)


def test_the_same_edge_added_both_ways_keeps_one_in_either_order() -> None:
    base = base_doc()
    ua = _edge_update(base, "n2,n3")
    ub = _edge_update(base, "n3,n2")
    for order in ((ua, ub), (ub, ua)):
        room = _room(base)
        for update in order:
            room.apply_update(update, None, None)
        edges = to_json(room.doc, SKELETON)["edges"]
        assert ("n2,n3" in edges) != ("n3,n2" in edges), (order is (ua, ub), sorted(edges))
        assert violations(room.doc) == []
        assert to_json(room.doc, SKELETON) == _whole(base, list(order))


def _edge_update(base: bytes, key: str) -> bytes:
    sk = replica(base)
    before = sk.doc.get_state()
    sk.doc.get("edges", type=Map)[key] = "t1"
    return sk.doc.get_update(before)


def test_a_delete_arriving_after_a_repair_that_rewrote_its_node_still_wins() -> None:
    """The measured counterexample: replica 0 deletes n0, replica 1 merges two
    trees, replica 2 adds a node to the tree replica 1 deleted; arriving 1, 2,
    0 the repair rewrites n0 before its delete arrives."""
    base = base_doc()
    replicas = [replica(base) for _ in range(3)]
    ops = [(0, "delete_node", 0, 0), (1, "merge", 0, 230), (2, "add_connected", 240, 0)]
    for who, op, i, j in ops:
        _apply_op(replicas[who], op, i, j, f"r{who}")
    updates = [sk.doc.get_update() for sk in replicas]
    room = _room(base)
    for k in (1, 2, 0):
        room.apply_update(updates[k], None, None)
    assert violations(room.doc) == []
    assert to_json(room.doc, SKELETON) == _whole(base, [updates[k] for k in (1, 2, 0)])


@settings(max_examples=300, deadline=None)
@given(ops=OPS, replicas=st.integers(2, 3), data=st.data())
def test_random_edits_in_random_orders_end_where_one_whole_repair_ends(
    ops: list[tuple[int, str, int, int]], replicas: int, data: st.DataObject
) -> None:
    """Each replica sends its edits (made without seeing any repair) in one
    update or in several; the room takes the updates interleaved in a random
    order, each replica's in its own order, and repairs after each: it ends
    exactly where one repair of all the updates ends, without violations,
    every repair one version of the server's."""
    base = base_doc()
    sks = [replica(base) for _ in range(replicas)]
    sent: list[list[bytes]] = [[] for _ in sks]
    for who, op, i, j in ops:
        sk = sks[who % replicas]
        before = sk.doc.get_state()
        _apply_op(sk, op, i, j, f"r{who % replicas}")
        if data.draw(st.booleans()) or not sent[who % replicas]:
            sent[who % replicas].append(sk.doc.get_update(before))
        else:  # joined to the replica's previous update
            sent[who % replicas][-1] = sk.doc.get_update(
                _state_before(sk.doc, sent[who % replicas][:-1], base)
            )
    order: list[bytes] = []
    while any(sent):
        k = data.draw(st.sampled_from([k for k, queue in enumerate(sent) if queue]))
        order.append(sent[k].pop(0))
    room = _room(base)
    records = room.sink.records  # type: ignore[attr-defined]
    for update in order:
        count = len(records)
        room.apply_update(update, None, None)
        repairs = [r for r in records[count:] if b'"repair"' in r.summary]
        assert len(repairs) <= 1 and all(r.author_id is None for r in repairs)
    assert violations(room.doc) == []
    assert to_json(room.doc, SKELETON) == _whole(base, order)


def _state_before(doc: Doc, earlier: list[bytes], base: bytes) -> bytes:
    """The state a replica had after ``earlier`` of its updates."""
    state = SKELETON.new_doc(base)
    for update in earlier:
        state.apply_update(update)
    return state.get_state()


class _Writer(PeerState):
    def __init__(self) -> None:
        super().__init__(user_id=None, can_write=True)

    def send(self, frame: bytes | Any) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        pass

    __hash__ = object.__hash__


class _Client:
    """A replica speaking the sync protocol as Yjs clients do: each local
    transaction's update as it is made; on (re)connecting, its sync step 1
    (the state it has), a sync step 2 of all the room lacks, then all it
    lacks from the room (the room's repairs too)."""

    def __init__(self, base: bytes, room: Room) -> None:
        self.sk = replica(base)
        self.room = room
        self.outbox: list[bytes] = []
        self._receiving = False
        self.sk.doc.observe(self._local)

    def _local(self, event: TransactionEvent) -> None:
        if not self._receiving:
            self.outbox.append(event.update)

    def send(self) -> None:
        for update in self.outbox:
            self.room.apply_update(update, None, None)
        self.outbox.clear()

    def connect(self) -> None:
        doc, room = self.sk.doc, self.room
        room.receive(_Writer(), m.pack_sync_step1(doc.get_state()))
        room.apply_update(doc.get_update(room.doc.get_state()), None, None)
        self.outbox.clear()
        self._receiving = True
        try:
            doc.apply_update(room.doc.get_update(doc.get_state()))
        finally:
            self._receiving = False


@settings(max_examples=200, deadline=None)
@given(ops=OPS, replicas=st.integers(2, 3), data=st.data())
def test_replicas_that_see_repairs_lose_nothing(
    ops: list[tuple[int, str, int, int]], replicas: int, data: st.DataObject
) -> None:
    """Replicas connect (and get the room's repairs), edit, send and
    reconnect at random: the room ends without violations, every node a
    replica made and none deleted is there, and every replica converges."""
    base = base_doc()
    room = _room(base)
    clients = [_Client(base, room) for _ in range(replicas)]
    made, deleted = set(replica(base).nodes.keys()), set()
    for who, op, i, j in ops:
        client = clients[who % replicas]
        action = data.draw(st.sampled_from(["edit", "edit", "send", "connect"]))
        if action == "send":
            client.send()
        elif action == "connect":
            client.connect()
        before = set(client.sk.nodes.keys())
        _apply_op(client.sk, op, i, j, f"r{who % replicas}")
        after = set(client.sk.nodes.keys())
        made |= after - before
        deleted |= before - after
    for k in data.draw(st.permutations(range(replicas))):
        if data.draw(st.booleans()):
            clients[k].connect()
        else:
            clients[k].send()
    assert violations(room.doc) == []
    assert made - deleted <= set(room.doc.get("nodes", type=Map).keys())
    for client in clients:
        sync(client.sk.doc, room.doc)
        assert to_json(client.sk.doc, SKELETON) == to_json(room.doc, SKELETON)


def _repaired_room() -> tuple[bytes, Room, Skeleton]:
    """A room whose repair moved ``x`` to recovered (its tree was deleted
    meanwhile), and the replica that added ``x``, which has the repair."""
    base = base_doc()
    a, b = replica(base), replica(base)
    a.delete_tree("t1")
    b.add_node("t1", [5, 5, 5], "x")
    room = _room(base)
    room.apply_update(a.doc.get_update(), None, None)
    room.apply_update(b.doc.get_update(), None, None)
    assert Skeleton(room.doc).node("x").tree_id == RECOVERED
    b.doc.apply_update(room.doc.get_update(b.doc.get_state()))
    return base, room, b


def test_a_reconnecting_replica_that_has_the_repair_keeps_what_it_moved() -> None:
    """Offline, the replica moves n4; reconnecting, its sync step 2 also
    deletes the entry of ``x`` the repair replaced (a step 2 deletes all the
    replica knows deleted). Its step 1 told the room it has the repair, so
    that delete is not taken for the replica's own: ``x`` stays."""
    _, room, b = _repaired_room()
    b.move_node("n4", [9, 9, 9])
    room.receive(_Writer(), m.pack_sync_step1(b.doc.get_state()))
    room.apply_update(b.doc.get_update(room.doc.get_state()), None, None)
    assert Skeleton(room.doc).node("x").tree_id == RECOVERED
    assert Skeleton(room.doc).node("n4").position == Skeleton(b.doc).node("n4").position
    assert violations(room.doc) == []


def test_edits_of_what_a_repair_wrote_are_taken_as_they_are() -> None:
    """The replica, which has the repair, moves ``x``, then deletes it: its
    updates name the repair's entry (as the item they replace, as the item
    they delete), so the room's unrepaired merge takes the repair first."""
    _, room, b = _repaired_room()
    room.apply_update(_transaction(b, lambda: b.move_node("x", [7, 7, 7])), None, None)
    assert Skeleton(room.doc).node("x").position == Skeleton(b.doc).node("x").position
    assert Skeleton(room.doc).node("x").tree_id == RECOVERED
    room.apply_update(_transaction(b, lambda: b.delete_node("x")), None, None)
    assert "x" not in room.doc.get("nodes", type=Map)
    assert violations(room.doc) == []


def _transaction(sk: Skeleton, edit: Any) -> bytes:
    """The update of one local transaction (what a Yjs client sends)."""
    out: list[bytes] = []
    sub = sk.doc.observe(lambda event: out.append(event.update))
    try:
        with sk.doc.transaction():
            edit()
    finally:
        sk.doc.unobserve(sub)
    return out[0]


def test_above_the_size_limit_the_room_repairs_on_the_live_document() -> None:
    base = base_doc()
    room = _room(base, merge_max_nodes=0)
    a, b = replica(base), replica(base)
    a.delete_tree("t1")
    b.add_node("t1", [5, 5, 5], "x", connect_to="n1")
    for sk in (a, b):
        room.apply_update(sk.doc.get_update(), None, None)
    assert room.repairer.merge is None  # type: ignore[union-attr]
    assert violations(room.doc) == []
    assert to_json(room.doc, SKELETON) == _whole(base, [a.doc.get_update(), b.doc.get_update()])
