"""The clients' updates merged without the room's repairs. Pure.

A repair written while an offline client's edits are still on their way can
lose against them in the CRDT: a repair that moves a node writes the node's
whole entry again, and the client's delete of the entry it saw removes only
that older entry (docs/schema.md, "Repair and arrival order"). So the room
keeps, beside its live document, the merge of every update except its
repairs (:class:`UnrepairedMerge`, "U"), and after each update makes the
live document equal, on the keys that can have changed, to the repair of U
(collab/skeleton/repaired.py). The live document then ends where one repair
of all the updates ends, whatever order they arrived in.

A repair stays out of U until a client builds on it; from then on it is part
of U like any edit (it is *caught up*). A client builds on a repair when

- its update holds an item that names a repair's item (an edit of an entry
  the repair wrote): U cannot integrate it, its state stays behind;
- its update deletes a repair's item (the deletes name their items);
- it is a change of the server's own (a restore or revert, written by the
  live document's client id after the repairs);
- it tells the room, in its sync step 1, that it has the repair: its sync
  step 2 then carries the repair's deletes as well, which U must not take
  without the repair's writes.

Updates that named no repair are taken into U as they are: edits made
without seeing a repair are what the repair must not win against.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, get_update

from collab.document.content import Path, TouchRecorder
from collab.document.update_builder import read_state_vector, read_varuint
from collab.skeleton.kind import SKELETON
from collab.skeleton.repair import SkeletonIndex

Observer = Callable[[Doc, list[Path], dict[Path, Any]], None]


def _beyond(update: bytes, state: bytes) -> tuple[bool, list[tuple[int, int, int]]]:
    """What ``update`` holds beyond the encoded state vector ``state``:
    whether any items, and its delete set as (client, clock, length) ranges.

    yrs's diff of an update against a state keeps the items the state lacks
    and the whole delete set, written after them as varuint(#clients), per
    client varuint(client), varuint(#ranges), per range varuint(clock),
    varuint(length) (Yjs update v1); read when no items are left."""
    data = get_update(update, state)
    count, pos = read_varuint(data, 0)
    if count:
        return True, []
    clients, pos = read_varuint(data, pos)
    out: list[tuple[int, int, int]] = []
    for _ in range(clients):
        client, pos = read_varuint(data, pos)
        ranges, pos = read_varuint(data, pos)
        for _ in range(ranges):
            clock, pos = read_varuint(data, pos)
            length, pos = read_varuint(data, pos)
            out.append((client, clock, length))
    return False, out


class UnrepairedMerge:
    """U: a document that takes every update the live document takes except
    the repairs, until something builds on them (see the module)."""

    def __init__(self, live: Doc, index: SkeletonIndex, observe: Observer) -> None:
        """A copy of ``live`` as it is now (before a repair), ``index`` a
        copy of its index; ``observe`` takes every transaction of U."""
        self.doc = SKELETON.new_doc(live.get_update())
        self.index = index
        self.server = live.client_id
        #: Repairs held back from U, oldest first: (first clock, end clock, update).
        self.held: deque[tuple[int, int, bytes]] = deque()
        self._observe = observe
        self._recorder = TouchRecorder(self.doc, SKELETON, ("nodes", "edges"))

    def hold(self, repair: bytes, live: Doc) -> None:
        """A repair ``live`` just took: kept out of U for now."""
        if self.held:
            start = self.held[-1][1]
        else:
            start = read_state_vector(self.doc.get_state()).get(self.server, 0)
        end = read_state_vector(live.get_state()).get(self.server, start)
        self.held.append((start, end, repair))

    def take(self, update: bytes) -> None:
        """An update that is not a repair (a client's, as it was sent, or a
        server change): into U, with the held repairs it builds on."""
        self._apply(update)
        if not self.held:
            return
        # Items U cannot integrate name a held repair's items (or come from
        # the server, after them); deletes may name them. Applied in either
        # order, U ends the same: the update waits in yrs for the repairs.
        items, deleted = _beyond(update, self.doc.get_state())
        first = self.held[0][0]
        if items or any(c == self.server and k + n > first for c, k, n in deleted):
            self.catch_up()

    def seen(self, state_vector: bytes) -> bool:
        """A client has the state ``state_vector``: the repairs it holds are
        caught up. True when that changed U."""
        clock = read_state_vector(state_vector).get(self.server, 0)
        if not self.held or self.held[0][0] >= clock:
            return False
        self.catch_up(clock)
        return True

    def absorb(self, update: bytes, delta: Any) -> None:
        """A piece of a server-built bulk change (fresh entities, a client id
        of its own): applied without observing; ``delta`` describes it."""
        self._recorder.close()
        try:
            self.doc.apply_update(update)
        finally:
            self._recorder.attach()
        self.index.absorb(delta)

    def catch_up(self, clock: int | None = None) -> None:
        """Take the held repairs that start before ``clock`` (all: None)."""
        while self.held and (clock is None or self.held[0][0] < clock):
            self._apply(self.held.popleft()[2])

    def _apply(self, update: bytes) -> None:
        self.doc.apply_update(update)
        self._observe(self.doc, self._recorder.take_touches(), self._recorder.take_values())
