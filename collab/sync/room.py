"""A room: one live document per (annotation, doc kind) and the peers editing it.

The room is pure protocol and state: it never awaits (``quiet`` only waits
for a bulk change or a hold of writes to end). Peers are anything with
the :class:`Peer` interface (the WebSocket endpoint provides one); accepted
updates go to a :class:`Sink` (the group committer); once they are durable
the room's owner (the registry, told by the committer's ``on_durable``)
calls :meth:`Room.mark_saved`. What differs between document kinds comes
from the room's :class:`~collab.document.kind.DocumentKind` (its roots) and
its repairer; the room names no kind.

Per accepted update the room assigns the next version, broadcasts the update
to the other peers at once, and hands the record to the sink. Broadcasting
before the commit keeps latency low; clients that must know what is durable
ask for ``saved`` messages (``?acks=1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from pycrdt import Doc, TransactionEvent, handle_sync_message, merge_updates

from collab.document.content import TouchRecorder, pack_summary
from collab.document.kind import DocumentKind, Repairer
from collab.document.log import RoomKey, UpdateRecord
from collab.document.update_builder import concat_pieces
from collab.errors import BadUpdate, DocumentFull, Unavailable
from collab.sync import messages as m

log = logging.getLogger("collab.sync.room")

EMPTY_STATE = b"\x00"  # the state vector of a client that has nothing
SMALL_PART = 1 << 20  # stored parts below this are merged into one update for a fresh client


def group_parts(parts: list[bytes]) -> list[list[bytes]]:
    """Stored parts (oldest first) as the groups a fresh client is sent, one
    frame each: a large part alone (sent as it is), consecutive small ones
    together (merged: cheap, and fewer frames)."""
    groups: list[list[bytes]] = []
    for data in parts:
        if len(data) < SMALL_PART and groups and len(groups[-1][-1]) < SMALL_PART:
            groups[-1].append(data)
        else:
            groups.append([data])
    return groups


class LazyFrame:
    """A frame answering the client's own sync request, built only when it is
    about to be written (a fresh client's copy of a big document): queued
    frames of many clients then do not each hold a copy of the document at
    once. Endpoints bound what they queue of relayed frames (``bytes``); an
    answer is bounded by the document itself and is not counted."""

    __slots__ = ("build", "size")

    def __init__(self, build: Callable[[], bytes], size: int) -> None:
        self.build = build
        self.size = size


def _ready(frame: bytes) -> Callable[[], bytes]:
    return lambda: frame


#: The end of every fresh client's answer: an empty sync step 2.
_SYNCED = m.pack_sync_step2(m.EMPTY_UPDATE)
SYNCED = LazyFrame(_ready(_SYNCED), len(_SYNCED))


class FreshAnswer:
    """What a client that has nothing is sent: the stored parts (oldest first,
    the latest snapshot then the records since) as update frames, then an
    empty sync step 2, so "synced" means everything saved.

    Built once and shared by every fresh client: in a reconnect storm 500
    clients each merging the same 300 small records cost 3 ms apiece, 74 % of
    the server's CPU (tests/benchmarks/storm.py). Parts appended since are
    added as frames of their own; a new first part (a snapshot) rebuilds.
    Consecutive small parts are merged into one frame (built here, shared);
    a large part is packed only when written (:class:`LazyFrame`), one at a
    time, so clients do not each hold a copy. Oldest first because yrs
    (pycrdt 0.14) integrates an update received before one it depends on
    wrongly when two clients set the same map key concurrently (the entry
    goes missing; tests/sync/test_rooms.py).
    """

    __slots__ = ("_count", "_frames", "_start")

    def __init__(self) -> None:
        self._start: int | None = None
        self._count = 0
        self._frames: list[LazyFrame] = []

    def frames(self, parts: list[tuple[int, bytes]]) -> list[LazyFrame]:
        if not parts or parts[0][0] != self._start or len(parts) < self._count:
            self._start, self._count, self._frames = (parts[0][0] if parts else None), 0, []
        if len(parts) > self._count:
            for group in group_parts([data for _, data in parts[self._count :]]):
                if len(group) == 1 and len(group[0]) >= SMALL_PART:
                    self._frames.append(LazyFrame(partial(m.pack_update, group[0]), len(group[0])))
                else:
                    frame = m.pack_update(group[0] if len(group) == 1 else merge_updates(*group))
                    self._frames.append(LazyFrame(_ready(frame), len(frame)))
            self._count = len(parts)
        return [*self._frames, SYNCED]


class Peer(Protocol):
    user_id: int | None
    can_write: bool
    wants_acks: bool
    wants_accepted: bool
    awareness_ids: set[int]
    denied_told: bool

    def send(self, frame: bytes | LazyFrame) -> None: ...

    def close(self, code: int, reason: str) -> None:
        """End the connection with a WebSocket close code and reason."""


class Forwarding(Protocol):
    """Where a mirror room's clients' updates go (collab/sync/cluster.py):
    to the owning instance, through the database."""

    def forward(self, room: Room, record: UpdateRecord) -> int:
        """Queue ``record`` (its version 0) for the owner; a token that
        :meth:`Room.forward_done` names once the owner made it a version."""


class Sink(Protocol):
    #: Why writes are refused right now (None while they are accepted).
    refusing_writes: bool
    failure: str | None

    def submit(self, record: UpdateRecord) -> None:
        """Take a record to store; whoever stores it tells the room's owner
        once it is durable (the registry then calls :meth:`Room.mark_saved`)."""


class Room:
    def __init__(
        self,
        key: RoomKey,
        doc: Doc,
        version: int,
        sink: Sink,
        *,
        kind: DocumentKind,
        snapshot_every: int,
        on_update: Callable[[Room, UpdateRecord], None] | None = None,
        repairer: Repairer | None = None,
        max_bytes: int = 0,
    ) -> None:
        self.key = key
        self.kind = kind
        self.doc = doc
        self.version = version
        self.saved_version = version
        self.sink = sink
        self.snapshot_every = snapshot_every
        self.peers: set[Peer] = set()
        self.awareness: dict[int, m.AwarenessEntry] = {}
        self.idle_since: float | None = time.monotonic()
        self.holds = 0  # REST operations using the room; it is not unloaded meanwhile
        self.import_lock = asyncio.Lock()  # one NML import at a time
        self._on_update = on_update
        self.repairer = repairer
        self._repairing = False
        self._skip_repair = False
        self._recorder = TouchRecorder(doc, kind, repairer.values_of if repairer else ())
        self._author: int | None = None
        self._origin: Peer | None = None
        self._extra_summary: dict[str, Any] | None = None
        self._last_record: UpdateRecord | None = None
        #: Paths the last transaction touched (what a repair pass looks at).
        self.touched: list[tuple[str, ...]] = []
        #: New values of the touched entries of the repairer's ``values_of`` roots.
        self.touched_values: dict[tuple[str, ...], Any] = {}
        #: The updates whose merge is the document's state, oldest first, as
        #: (version, bytes): the latest snapshot, then every record since.
        #: A client that has nothing gets these as they are instead of a
        #: fresh encoding of the whole document (1.3 s of GIL at a million
        #: nodes). None when unknown or grown too long (encode instead).
        self.state_parts: list[tuple[int, bytes]] | None = []
        self._state_parts_limit = max(4 * snapshot_every, 64)
        #: Stored bytes of the document: its latest snapshot and the records
        #: since (an upper bound when those are not known). Clients' updates
        #: that would pass ``max_bytes`` (0: no cap) are refused.
        self.stored_bytes = 0
        self.max_bytes = max_bytes
        self._fresh = FreshAnswer()
        #: Set while a bulk change runs (:meth:`begin_bulk`) or writes are held
        #: (:meth:`writes_held`); cleared at its end.
        self.busy: asyncio.Event | None = None
        self._bulk: list[bytes] = []
        #: False in a mirror: a room served here while another instance owns
        #: the annotation (docs/architecture.md, "Several instances"). Its
        #: versions come from the log (:meth:`apply_remote`); its clients'
        #: updates are applied here, relayed to its peers and forwarded.
        self.owned = True
        self.forwarding: Forwarding | None = None
        self._remote = False
        self._forwarded: int | None = None  # the token of the last forward
        #: A mirror's forwarded updates not yet back from the log, by token
        #: (a fresh client is sent them after the stored parts).
        self.forwarded: dict[int, bytes] = {}
        #: A mirror's ``accepted`` answers owed, per peer, in order: [token or
        #: None (changed nothing), version once known].
        self._owed: dict[Peer, deque[list[int | None]]] = {}
        self._inbox_entry: tuple[str, int] | None = None
        #: Called with each awareness update of this room's own clients
        #: (the cluster passes it to the other instances).
        self.on_awareness: Callable[[Room, bytes], None] | None = None
        self._sub = doc.observe(self._on_transaction)

    def materialised(self) -> object:
        """What the kind's repairer keeps current beside the document (the
        skeleton's repair index), or None: a kind's own endpoints ask this
        instead of reading the whole document back out of the CRDT."""
        return self.repairer.materialised() if self.repairer is not None else None

    # -- peers -------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        self.peers.add(peer)
        self.idle_since = None
        # Our state vector first, so the client answers with what we lack.
        peer.send(m.pack_sync_step1(self.doc.get_state()))
        if self.awareness:
            entries = [e for e in self.awareness.values() if e.state != "null"]
            if entries:
                peer.send(m.pack_awareness(m.pack_awareness_update(entries)))
        if peer.wants_acks:
            peer.send(m.pack_saved(self.saved_version))

    def leave(self, peer: Peer) -> None:
        self.peers.discard(peer)
        self._owed.pop(peer, None)
        gone = [
            m.AwarenessEntry(cid, self.awareness[cid].clock + 1, "null")
            for cid in sorted(peer.awareness_ids)
            if cid in self.awareness
        ]
        for entry in gone:
            del self.awareness[entry.client_id]
        if gone:
            payload = m.pack_awareness_update(gone)
            self._broadcast(m.pack_awareness(payload), None)
            if self.on_awareness is not None:
                self.on_awareness(self, payload)
        if not self.peers:
            self.idle_since = time.monotonic()

    # -- messages ----------------------------------------------------------

    def receive(self, peer: Peer, frame: bytes) -> None:
        """Handle one frame from ``peer``; raises a CollabError for bad input."""
        msg = m.parse(frame)
        if isinstance(msg, m.SyncMessage):
            if msg.sub == m.SyncType.STEP1:
                if peer.can_write and self.repairer is not None and self.busy is None:
                    self._seen(msg.payload)
                if msg.payload == EMPTY_STATE and self.state_parts is not None:
                    self._send_stored_state(peer, self.state_parts)
                    return
                reply = handle_sync_message(frame[1:], self.doc)
                if reply is not None:
                    peer.send(LazyFrame(lambda: reply, len(reply)))
                return
            if msg.payload == m.EMPTY_UPDATE:  # nothing to apply (a reader's step 2 too)
                if peer.can_write and peer.wants_accepted:
                    self._accept(peer, None)
                return
            if not peer.can_write:
                if not peer.denied_told:
                    peer.denied_told = True
                    peer.send(m.pack_auth_denied("read-only access: updates are not applied"))
                return
            if self.sink.refusing_writes:
                raise Unavailable(f"not saving: {self.sink.failure}; try again later")
            self._forwarded = None
            version = self.apply_update(msg.payload, peer.user_id, peer)
            if peer.wants_accepted:  # what changed nothing is in the current version
                self._accept(peer, version if self.owned else self._forwarded)
        elif isinstance(msg, m.AwarenessMessage):
            self._receive_awareness(peer, msg)
        elif isinstance(msg, m.QueryAwarenessMessage):
            entries = [e for e in self.awareness.values() if e.state != "null"]
            peer.send(m.pack_awareness(m.pack_awareness_update(entries)))
        # AuthMessage from a client carries nothing for the server: ignored.

    def _send_stored_state(self, peer: Peer, parts: list[tuple[int, bytes]]) -> None:
        frames = self._fresh.frames(parts)
        for frame in frames[:-1]:
            peer.send(frame)
        for data in self.forwarded.values():  # a mirror's updates on their way
            peer.send(m.pack_update(data))
        peer.send(frames[-1])

    # -- a mirror ----------------------------------------------------------

    def _accept(self, peer: Peer, version_or_token: int | None) -> None:
        """Tell ``peer`` which version holds what it just sent: at once in an
        owned room; in a mirror once the owner made its forward a version
        (in order: a later answer waits for earlier ones)."""
        if self.owned:
            peer.send(m.pack_accepted(version_or_token or self.version))
            return
        owed = self._owed.setdefault(peer, deque())
        owed.append([version_or_token, None])
        self._pay(peer, owed)

    def _pay(self, peer: Peer, owed: deque[list[int | None]]) -> None:
        while owed:
            token, version = owed[0]
            if token is not None and version is None:
                return
            owed.popleft()
            peer.send(m.pack_accepted(version if version is not None else self.version))

    def forward_done(self, token: int, version: int) -> None:
        """The owner made forwarded update ``token`` version ``version``
        (the room has read the log up to it)."""
        self.forwarded.pop(token, None)
        for peer, owed in list(self._owed.items()):
            for entry in owed:
                if entry[0] == token:
                    entry[1] = version
                    self._pay(peer, owed)
                    break

    def apply_remote(self, version: int, data: bytes) -> None:
        """A mirror reads version ``version`` from the log: applied, relayed
        to the peers what is new to them, and counted as durable."""
        if version <= self.version:
            return
        self._remote = True
        try:
            self.doc.apply_update(data)
        except Exception:  # the owner stored it: a bug, never a client's fault
            log.exception("a stored update failed to apply", extra={"version": version})
        finally:
            self._remote = False
        self.version = version
        self.stored_bytes += len(data)
        if self.state_parts is not None:
            self.state_parts.append((version, data))
            if len(self.state_parts) > self._state_parts_limit:
                self.state_parts = None

    def apply_forwarded(
        self,
        update: bytes,
        author: int | None,
        summary: dict[str, Any],
        entry: tuple[str, int],
    ) -> None:
        """The owner applies an update a mirror forwarded (``entry``: its
        sender and inbox id) as a version of its own, even when this
        document has it already (it came here some other way, or it is
        this process's own forward from before a takeover): the log must
        hold it, and the inbox row goes in that version's commit."""
        self._inbox_entry = entry
        try:
            try:
                version = self.apply_update(update, author, None, summary)
            except Exception:  # a mirror checked it; this document refuses it
                log.warning(
                    "a forwarded update was refused",
                    extra={"annotation": self.key.annotation_id, "doc": self.key.doc},
                )
                version = None
            if version is None:
                self._author, self._origin, self._extra_summary = author, None, summary
                self._last_record = None
                try:
                    self._record(update, {}, broadcast=False)
                finally:
                    self._author, self._extra_summary = None, None
                self._skip_repair = True
                try:
                    self._finish()
                finally:
                    self._skip_repair = False
        finally:
            self._inbox_entry = None

    def remote_awareness(self, payload: bytes) -> None:
        """Awareness of another instance's clients: kept and relayed to ours."""
        try:
            entries = m.parse_awareness_update(payload)
        except Exception:
            return
        for entry in entries:
            known = self.awareness.get(entry.client_id)
            if known is not None and known.clock > entry.clock:
                continue
            if entry.state == "null":
                self.awareness.pop(entry.client_id, None)
            else:
                self.awareness[entry.client_id] = entry
        self._broadcast(m.pack_awareness(payload), None)

    def promote(self, sink: Sink, repairer: Repairer | None) -> None:
        """The mirror's instance took the annotation over: from now on it
        numbers versions itself (what it forwarded comes back through the
        inbox, applied by the new owner as versions of their own)."""
        self.owned = True
        self.forwarding = None
        self.sink = sink
        self.repairer = repairer
        self._recorder.close()
        self._recorder = TouchRecorder(self.doc, self.kind, repairer.values_of if repairer else ())
        for peer, owed in list(self._owed.items()):
            for entry in owed:  # forwards still owed are answered by the version now
                entry[0] = None
            self._pay(peer, owed)
        self._owed.clear()
        self.forwarded.clear()

    def rebase_from(self, parts: list[tuple[int, bytes]]) -> None:
        """The stored state a room was loaded from (snapshot first, then the tail)."""
        self.state_parts = parts if len(parts) <= self._state_parts_limit else None
        self.stored_bytes = sum(len(data) for _, data in parts)

    def rebase(self, version: int, snapshot: bytes) -> None:
        """A snapshot of ``version`` was stored: it replaces the parts up to it."""
        parts = self.state_parts
        if parts is None:
            if version == self.version:
                self.state_parts = [(version, snapshot)]
                self.stored_bytes = len(snapshot)
            return
        if parts and parts[0][0] > version:
            return  # older than what the parts start from
        self.state_parts = [(version, snapshot), *((v, d) for v, d in parts if v > version)]
        self.stored_bytes = sum(len(data) for _, data in self.state_parts)

    def _receive_awareness(self, peer: Peer, msg: m.AwarenessMessage) -> None:
        frame = m.pack_awareness(msg.payload)
        if not peer.can_write:
            # Echo to the sender only: its connection stays alive (the client
            # drops a socket after 30 s of silence) and nothing is relayed.
            peer.send(frame)
            return
        for entry in msg.entries:
            known = self.awareness.get(entry.client_id)
            if known is not None and known.clock > entry.clock:
                continue
            peer.awareness_ids.add(entry.client_id)
            if entry.state == "null":
                self.awareness.pop(entry.client_id, None)
                peer.awareness_ids.discard(entry.client_id)
            else:
                self.awareness[entry.client_id] = entry
        # Echo to the sender too: the stock client relies on its renewals coming back.
        self._broadcast(frame, None)
        if self.on_awareness is not None:
            self.on_awareness(self, msg.payload)

    # -- updates -----------------------------------------------------------

    def apply_update(
        self,
        update: bytes,
        author: int | None,
        origin: Peer | None,
        summary: dict[str, Any] | None = None,
    ) -> int | None:
        """Apply a client's update; return the new version (None if it changed
        nothing). Server-built bulk changes go through :meth:`begin_bulk`."""
        self.make_room_for(len(update))
        if self.kind.check is not None and origin is not None:
            self.kind.check(self.doc, update, author)  # refused before anything is applied
        self._author, self._origin, self._last_record = author, origin, None
        self._extra_summary = summary
        try:
            self.doc.apply_update(update)
        except ValueError as exc:
            raise BadUpdate(f"update cannot be applied: {exc}") from None
        except Exception as exc:  # pycrdt panics surface as PanicException
            raise BadUpdate(f"update cannot be applied: {type(exc).__name__}") from None
        finally:
            self._author, self._origin, self._extra_summary = None, None, None
        return self._finish(update)

    def make_room_for(self, size: int) -> None:
        """Raise DocumentFull if ``size`` more stored bytes would pass the cap."""
        if self.max_bytes and self.stored_bytes + size > self.max_bytes:
            raise DocumentFull(
                f"document full: {self.stored_bytes} bytes stored, cap {self.max_bytes}"
            )

    # -- server-built changes, in pieces ---------------------------------------

    def begin_bulk(self) -> None:
        """Start a server-built change of fresh entities (an NML import) that
        arrives in pieces and becomes **one** version (:meth:`end_bulk`).

        Its pieces are applied with no observer attached (yrs then builds no
        events for a million entries), the repairer's indexes take each
        piece's own description (``delta``) instead, and no repair pass runs
        (fresh entities cannot break an invariant). Until the end the room is
        ``busy``: the endpoints hold back clients' sync messages and other
        server changes (:meth:`quiet`), so nothing interleaves with the
        pieces and the version holds exactly them."""
        if self.busy is not None:
            raise RuntimeError("a bulk change is already running")
        self.busy = asyncio.Event()
        self._bulk = []
        self.doc.unobserve(self._sub)
        self._recorder.close()

    def apply_piece(self, update: bytes, delta: Any) -> None:
        """Apply one piece of the bulk change and send it to every peer."""
        assert self.busy is not None, "begin_bulk first"
        self.doc.apply_update(update)
        self._bulk.append(update)
        if self.repairer is not None:
            self.repairer.absorb(delta, update)
        if self.peers:
            self._broadcast(m.pack_update(update), None)

    def end_bulk(self, author: int | None, summary: dict[str, Any]) -> int | None:
        """Record the pieces applied since :meth:`begin_bulk` as one version
        (their bytes joined, not yrs's re-encoding); None if there were none."""
        pieces, self._bulk = self._bulk, []
        self._sub = self.doc.observe(self._on_transaction)
        self._recorder.attach()
        busy, self.busy = self.busy, None
        if busy is not None:
            busy.set()
        self._author, self._origin, self._extra_summary = author, None, summary
        self._last_record = None
        try:
            self._record(concat_pieces(pieces), {}, broadcast=False)
        finally:
            self._author, self._extra_summary = None, None
        self._skip_repair = True
        try:
            return self._finish()
        finally:
            self._skip_repair = False

    async def quiet(self) -> None:
        """Wait until no bulk change or hold is running (bounded by it)."""
        while self.busy is not None:
            await self.busy.wait()

    @contextlib.asynccontextmanager
    async def writes_held(self) -> AsyncIterator[None]:
        """Keep the version where it is while the caller reads the log: the
        room is ``busy`` (clients' sync messages wait in their endpoints,
        server changes and imports in :meth:`quiet`). The hold ends without
        an await, so a :meth:`change` made right after the block is the
        next version. Hold briefly: every writer of the room waits."""
        await self.quiet()
        self.busy = asyncio.Event()
        try:
            yield
        finally:
            held, self.busy = self.busy, None
            held.set()

    def change(
        self, edit: Callable[[Doc], None], author: int | None, summary: dict[str, Any]
    ) -> int | None:
        """Make a server-side change (restore, revert, repair) as one new version."""
        if self.busy is not None:
            raise RuntimeError("a bulk change is running: await quiet() first")
        self._author, self._origin, self._extra_summary = author, None, summary
        self._last_record = None
        try:
            with self.doc.transaction():
                edit(self.doc)
        finally:
            self._author, self._extra_summary = None, None
        return self._finish()

    def _finish(self, sent: bytes | None = None) -> int | None:
        """Hand on the last transaction's record; let the repairer see it
        (and ``sent``, a client's update as it came, even if it changed
        nothing here) and repair what it broke."""
        record, self._last_record = self._last_record, None
        if record is not None and not self.owned:
            assert self.forwarding is not None
            self._forwarded = token = self.forwarding.forward(self, record)
            self.forwarded[token] = record.data
            return None
        if record is not None:
            if record.version % self.snapshot_every == 0:
                record.snapshot_due = True
            self.sink.submit(record)
            if self._on_update is not None:
                self._on_update(self, record)
        elif sent is None:
            return None
        if self.repairer is not None and not self._skip_repair:
            try:
                if record is not None:
                    touched, values, data = self.touched, self.touched_values, record.data
                else:
                    touched, values, data = [], {}, b""
                update = sent if sent is not None else data
                self.repairer.observe(self.doc, touched, values, update, self._repairing)
                if not self._repairing:
                    self._repair()
            except Exception:
                # The update is accepted, relayed and stored already: a bug in
                # a repair must not turn it into a refusal (or refuse every
                # later update of the room). Logged; the next change retries.
                log.exception(
                    "repair failed",
                    extra={"annotation": self.key.annotation_id, "doc": self.key.doc},
                )
        return record.version if record is not None else None

    def _seen(self, state_vector: bytes) -> None:
        """A writer has ``state_vector``: repairs it holds are no longer
        kept out of the repairer's unrepaired merge (repaired when due)."""
        assert self.repairer is not None
        try:
            if self.repairer.seen(state_vector) and not self.sink.refusing_writes:
                self._repair()
        except Exception:
            log.exception(
                "repair failed", extra={"annotation": self.key.annotation_id, "doc": self.key.doc}
            )

    def _repair(self) -> None:
        """Restore the document's invariants after a change, as new versions."""
        assert self.repairer is not None
        self._repairing = True
        try:
            for _ in range(5):  # a merge can expose more to fix; bounded
                fix = self.repairer.plan(self.doc, self.touched)
                if fix is None:
                    return
                edit, summary = fix
                if self.change(edit, None, {"repair": summary}) is None:
                    return
        finally:
            self._repairing = False

    def _on_transaction(self, event: TransactionEvent) -> None:
        update = event.update
        summary = self._recorder.take_summary()
        self.touched = self._recorder.take_touches()
        self.touched_values = self._recorder.take_values()
        self._record(update, summary)

    def _record(self, update: bytes, summary: dict[str, Any], *, broadcast: bool = True) -> None:
        if update == m.EMPTY_UPDATE:
            return
        if self._remote:  # a mirror reading the log: relayed, numbered already
            if self.peers:
                self._broadcast(m.pack_update(update), None)
            return
        if not self.owned:  # a mirror's client: relayed here, numbered by the owner
            if self._extra_summary:
                summary = {**self._extra_summary, **summary}
            self._last_record = UpdateRecord(
                key=self.key,
                version=0,
                author_id=self._author,
                created_at=time.time(),
                summary=pack_summary(summary),
                data=update,
            )
            if broadcast and len(self.peers) > (self._origin is not None):
                self._broadcast(m.pack_update(update), self._origin)
            return
        self.version += 1
        self.stored_bytes += len(update)
        if self.state_parts is not None:
            self.state_parts.append((self.version, update))
            if len(self.state_parts) > self._state_parts_limit:
                self.state_parts = None  # no snapshot came: encode until one does
        if self._extra_summary:
            summary = {**self._extra_summary, **summary}
        self._last_record = UpdateRecord(
            key=self.key,
            version=self.version,
            author_id=self._author,
            created_at=time.time(),
            summary=pack_summary(summary),
            data=update,
            inbox=() if self._inbox_entry is None else (self._inbox_entry,),
        )
        self._inbox_entry = None  # a repair that follows is a version of its own
        if broadcast and len(self.peers) > (self._origin is not None):
            self._broadcast(m.pack_update(update), self._origin)

    def _broadcast(self, frame: bytes, exclude: Peer | None) -> None:
        for peer in self.peers:
            if peer is not exclude:
                peer.send(frame)

    # -- durability --------------------------------------------------------

    def mark_saved(self, version: int) -> None:
        if version <= self.saved_version:
            return
        self.saved_version = version
        frame = m.pack_saved(version)
        for peer in self.peers:
            if peer.wants_acks:
                peer.send(frame)

    @property
    def unsaved(self) -> bool:
        return self.saved_version < self.version

    def close(self) -> None:
        self.doc.unobserve(self._sub)
        self._recorder.close()


@dataclass
class PeerState:
    """Fields every peer carries; endpoint peers inherit it."""

    user_id: int | None
    can_write: bool
    wants_acks: bool = False
    #: ``?accepted=1``: told the version each of its updates became (type 101).
    wants_accepted: bool = False
    awareness_ids: set[int] = field(default_factory=set)
    denied_told: bool = False
