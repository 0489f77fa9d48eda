"""This process among other ``collab serve`` processes over one database
(docs/architecture.md, "Several instances").

An annotation is owned by one process at a time: the one holding its lease
(collab/store/leases.py). The owner's rooms number versions and commit
them, each commit fenced by the lease's epoch in its own transaction. A
process whose clients open an annotation another process owns serves them
from **mirror** rooms: a mirror reads versions from the log as the owner
announces them (``NOTIFY``, collab/sync/cluster_wire.py) and relays them;
its clients' updates are applied and relayed locally at once, then
forwarded through the room inbox, where the owner picks them up, makes
them versions and tells the forwarder which (its clients' ``accepted``
and ``saved`` follow from that).

Every lease is renewed each sixth of ``COLLAB_LEASE_SECONDS``; a mirror
whose owner's lease expired (the owner died, or was paused) takes the
annotation over within one more sixth: it reads the log to its head,
numbers versions itself from then on, and applies what waits in the inbox
(its own forwards among them). An owner that loses its lease (it was
paused past it) has its next commit refused by the fence: its rooms close
their clients (1012), which reconnect and send what the log lacks.

With one process, the lease is taken and renewed (one statement a
second for all annotations), each commit checks it (one more statement in
the commit's transaction), and nothing else runs: versions are announced
only while another process watches the annotation.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import socket
import time
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from collab.document.log import RoomKey, UpdateRecord
from collab.keyed_locks import KeyedLocks
from collab.store import inbox, leases, oplog
from collab.store.committer import LEASE_LOST
from collab.store.database import Database, first_line, is_transient
from collab.sync import cluster_wire as wire

if TYPE_CHECKING:
    from collab.config import Settings
    from collab.metrics import Metrics
    from collab.sync.registry import RoomRegistry
    from collab.sync.room import Room

log = logging.getLogger("collab.sync.cluster")

#: Forwarded updates written to the inbox in one transaction, at most.
FORWARD_BATCH = 500
#: Inbox rows an owner reads at once.
DRAIN_BATCH = 256
#: Consumed-notices for ids not yet known here (the owner answered before
#: our insert returned), kept at most.
EARLY_MAX = 10_000


class Cluster:
    def __init__(
        self, pool: Database, settings: Settings, metrics: Metrics, registry: RoomRegistry
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._registry = registry
        self.url = settings.instance_url or default_url(settings.host, settings.port)
        #: This process: its url and a token of this start.
        self.owner = f"{self.url}#{secrets.token_hex(6)}"
        self.lease_seconds = settings.lease_seconds
        #: Annotations this process owns, with the epoch it holds them under.
        self.held: dict[int, int] = {}
        #: Annotations owned elsewhere that this process mirrors, with their owner's url.
        self.owners: dict[int, str] = {}
        #: Annotations owned here that another process watches.
        self.watched: set[int] = set()
        self._claims = KeyedLocks()
        self._tokens = itertools.count(1)
        self._forwards: list[tuple[Room, UpdateRecord, int]] = []
        self._awareness: list[str] = []
        self._outbox = asyncio.Event()
        #: The newest forward queued, and the newest in the inbox (tokens grow).
        self._queued_upto = 0
        self._sent_upto = 0
        self._progress = asyncio.Event()
        #: inbox id → (mirror room, token) of this process's forwards on their way.
        self._sent: dict[int, tuple[Room, int]] = {}
        self._early: dict[int, int] = {}
        #: Per mirrored document: the newest version announced, and the
        #: forwards of ours it applied (inbox id, version).
        self._wanted: dict[RoomKey, int] = {}
        self._consumed: dict[RoomKey, list[tuple[int, int]]] = defaultdict(list)
        self._following: set[RoomKey] = set()
        #: Per owned annotation: the inbox ids applied whose commit is not
        #: through yet (the rows are still there), and whether a drain runs.
        self._applied: dict[int, set[int]] = {}
        self._draining: set[int] = set()
        self._redrain: set[int] = set()
        self._promoting: set[int] = set()
        self._tg: asyncio.TaskGroup | None = None

    # -- lifetime ----------------------------------------------------------

    async def run(self, tg: asyncio.TaskGroup) -> None:
        """Listen, keep leases, forward: until cancelled (in the registry's TaskGroup)."""
        self._tg = tg
        async with asyncio.TaskGroup() as own:
            own.create_task(
                inbox.listen(self._pool.pool, self._heard, self._reconnected), name="cluster-listen"
            )
            own.create_task(self._keep(), name="cluster-leases")
            own.create_task(self._send(), name="cluster-forward")

    async def release_all(self) -> None:
        """At shutdown: give every annotation up, so another takes it at once."""
        held, self.held = self.held, {}
        if not held:
            return
        try:
            async with self._pool.acquire() as conn:
                for annotation, epoch in held.items():
                    await leases.release(conn, annotation, self.owner, epoch)
        except Exception as exc:  # they expire by themselves
            log.warning("leases not released", extra={"error": str(exc)})
        self._metrics.leases_held.set(0)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        assert self._tg is not None
        self._tg.create_task(self._guarded(coro, name), name=name)

    @staticmethod
    async def _guarded(coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cluster task failed", extra={"task": name})

    # -- ownership ---------------------------------------------------------

    async def claim(self, annotation_id: int) -> bool:
        """Before a room of the annotation loads: True if this process owns
        it (taking the lease when free), False if another does (the room
        will be a mirror: the owner is asked to announce its versions)."""
        if annotation_id in self.held:
            return True
        async with self._claims.hold(annotation_id):
            if annotation_id in self.held:
                return True
            async with self._pool.acquire() as conn:
                lease = await leases.acquire(
                    conn, annotation_id, self.owner, self.url, self.lease_seconds
                )
                if lease is not None:
                    self._took(annotation_id, lease.epoch)
                    return True
                live = await leases.watch(conn, [annotation_id], self.lease_seconds)
            current = live.get(annotation_id)
            self.owners[annotation_id] = current.url if current is not None else ""
            return False

    def _took(self, annotation_id: int, epoch: int) -> None:
        self.held[annotation_id] = epoch
        self.owners.pop(annotation_id, None)
        self._applied.pop(annotation_id, None)
        self._metrics.lease_changes.inc()
        self._metrics.leases_held.set(len(self.held))
        log.info("annotation owned", extra={"annotation": annotation_id, "epoch": epoch})

    async def write_owner(self, annotation_id: int) -> str | None:
        """Where a REST write of the annotation goes: None here (owned, or
        taken now), else the owning instance's url."""
        if annotation_id in self.held or await self.claim(annotation_id):
            return None
        return self.owners.get(annotation_id) or None

    def loaded(self, annotation_id: int) -> list[Room]:
        return [r for k, r in self._registry.rooms.items() if k.annotation_id == annotation_id]

    def room_loaded(self, room: Room) -> None:
        """A room finished loading: an owner reads what waits in the inbox; a
        mirror reads what the log gained since it was read."""
        annotation = room.key.annotation_id
        if room.owned:
            self._drain_soon(annotation)
        else:
            self._follow(room.key, 0)

    def room_unloaded(self, key: RoomKey) -> None:
        self._wanted.pop(key, None)
        self._consumed.pop(key, None)
        if not self.loaded(key.annotation_id):
            self.owners.pop(key.annotation_id, None)
            # A room reloaded after a refused record: what it had taken from
            # the inbox and not committed is taken again.
            self._applied.pop(key.annotation_id, None)

    # -- the committer's fencing ------------------------------------------

    def epoch_of(self, annotation_id: int) -> int | None:
        return self.held.get(annotation_id)

    def announce(self, records: Sequence[UpdateRecord], watched: set[int]) -> list[str]:
        self.watched.update(watched)
        newest: dict[RoomKey, int] = {}
        consumed: dict[RoomKey, list[tuple[str, int, int]]] = defaultdict(list)
        for record in records:
            if record.inbox:
                consumed[record.key].extend((o, i, record.version) for o, i in record.inbox)
            if record.key.annotation_id in watched or record.inbox:
                newest[record.key] = record.version
        now = time.time()
        out: list[str] = []
        for key, version in newest.items():
            out.extend(
                wire.pack_versions(
                    wire.Versions(
                        key.annotation_id, key.doc, version, now, tuple(consumed.get(key, ()))
                    )
                )
            )
        return out

    def committed(self, records: Sequence[UpdateRecord]) -> None:
        for record in records:
            if record.inbox:
                applied = self._applied.get(record.key.annotation_id)
                if applied is not None:
                    applied.difference_update(i for _, i in record.inbox)

    # -- a mirror's forwards ----------------------------------------------

    def forward(self, room: Room, record: UpdateRecord) -> int:
        token = next(self._tokens)
        self._forwards.append((room, record, token))
        self._queued_upto = token
        self._outbox.set()
        return token

    def publish_awareness(self, room: Room, payload: bytes) -> None:
        """Local clients' awareness, for the other instances' clients of the room."""
        annotation = room.key.annotation_id
        if room.owned and annotation not in self.watched:
            return
        text = wire.pack_awareness(wire.Awareness(annotation, room.key.doc, self.owner, payload))
        if text is not None and len(self._awareness) < 10_000:
            self._awareness.append(text)
            self._outbox.set()

    async def flushed(self) -> None:
        """Wait until every forward queued so far is in the inbox (not for
        later ones: clients may keep writing)."""
        target = self._queued_upto
        while self._sent_upto < target:
            self._progress.clear()
            await self._progress.wait()

    async def _send(self) -> None:
        delay = 0.05
        while True:
            await self._outbox.wait()
            self._outbox.clear()
            while self._forwards or self._awareness:
                batch = self._forwards[:FORWARD_BATCH]
                notes = self._awareness[:200]
                rows = [
                    inbox.Forward(
                        r.key.annotation_id, r.key.doc, rec.author_id, rec.summary, rec.data
                    )
                    for r, rec, _ in batch
                ]
                payloads = [
                    wire.pack_waiting(a) for a in dict.fromkeys(r.annotation_id for r in rows)
                ]
                try:
                    async with self._pool.acquire() as conn, conn.transaction():
                        ids = (
                            await inbox.forward(conn, self.owner, rows, payloads + notes)
                            if rows
                            else []
                        )
                        if not rows:
                            await inbox.notify(conn, notes)
                except Exception as exc:
                    if is_transient(exc):
                        log.warning("forwarding failed; retrying", extra={"error": str(exc)})
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 2.0)
                        continue
                    # Refused (the annotation deleted, say): the rooms close
                    # their clients, which send again what the log lacks.
                    log.error("forwards refused", extra={"error": str(exc), "count": len(batch)})
                    for key in {room.key for room, _, _ in batch}:
                        self._registry.reload(key, 0, f"forwarding refused: {first_line(exc)}")
                    del self._forwards[: len(batch)]
                    del self._awareness[: len(notes)]
                    self._advanced(batch)
                    continue
                delay = 0.05
                del self._forwards[: len(batch)]
                del self._awareness[: len(notes)]
                self._advanced(batch)
                for (room, _, token), ident in zip(batch, ids, strict=True):
                    version = self._early.pop(ident, None)
                    if version is not None:
                        room.forward_done(token, version)
                    else:
                        self._sent[ident] = (room, token)

    def _advanced(self, batch: list[tuple[Room, UpdateRecord, int]]) -> None:
        if batch:
            self._sent_upto = batch[-1][2]
            self._progress.set()

    # -- notifications -----------------------------------------------------

    def _heard(self, payload: str) -> None:
        notice = wire.unpack(payload)
        if isinstance(notice, wire.Versions):
            key = RoomKey(notice.annotation_id, notice.doc)
            mine = [(i, v) for o, i, v in notice.consumed if o == self.owner]
            room = self._registry.rooms.get(key)
            if room is None or room.owned:
                for ident, _ in mine:  # answered already (promoted), or gone
                    self._sent.pop(ident, None)
                return
            self._consumed[key].extend(mine)
            self._metrics.fanout_lag.observe(max(0.0, time.time() - notice.time))
            self._follow(key, notice.version)
        elif isinstance(notice, wire.Waiting):
            if notice.annotation_id in self.held:
                self._drain_soon(notice.annotation_id)
        elif isinstance(notice, wire.Awareness):
            if notice.origin == self.owner:
                return
            room = self._registry.rooms.get(RoomKey(notice.annotation_id, notice.doc))
            if room is not None:
                room.remote_awareness(notice.payload)

    def _reconnected(self) -> None:
        """The listener (re)connected: what was announced meanwhile was missed."""
        for key, room in list(self._registry.rooms.items()):
            if room.owned:
                self._drain_soon(key.annotation_id)
            else:
                self._follow(key, 0)

    # -- a mirror follows the log -----------------------------------------

    def _follow(self, key: RoomKey, version: int) -> None:
        self._wanted[key] = max(self._wanted.get(key, 0), version)
        if key not in self._following:
            self._following.add(key)
            self._spawn(self._follow_log(key), f"follow {key}")

    async def _follow_log(self, key: RoomKey) -> None:
        try:
            for _ in range(1000):  # bounded; a later notice starts another
                room = self._registry.rooms.get(key)
                if room is None or room.owned:
                    return
                async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                    async for info, data in oplog.iter_updates(conn, key, room.version + 1, None):
                        room.apply_remote(info.version, data)
                self._settle_forwards(key, room)
                self._registry.durable(key, room.version)
                if self._wanted.get(key, 0) <= room.version:
                    return
        finally:
            self._following.discard(key)

    def _settle_forwards(self, key: RoomKey, room: Room) -> None:
        consumed = self._consumed.get(key)
        if not consumed:
            return
        later = []
        for ident, version in consumed:
            if version > room.version:
                later.append((ident, version))
                continue
            sent = self._sent.pop(ident, None)
            if sent is not None:
                sent[0].forward_done(sent[1], version)
            elif len(self._early) < EARLY_MAX:
                self._early[ident] = version
        self._consumed[key] = later

    # -- an owner applies the inbox -----------------------------------------

    def _drain_soon(self, annotation_id: int) -> None:
        if annotation_id in self._draining:
            self._redrain.add(annotation_id)
            return
        self._draining.add(annotation_id)
        self._spawn(self._drain(annotation_id), f"drain {annotation_id}")

    async def _drain(self, annotation_id: int) -> None:
        try:
            for _ in range(10_000):  # bounded: DRAIN_BATCH rows a round
                self._redrain.discard(annotation_id)
                if annotation_id not in self.held:
                    return
                applied = self._applied.setdefault(annotation_id, set())
                async with self._pool.acquire() as conn:
                    rows = await inbox.pending(conn, annotation_id, sorted(applied), DRAIN_BATCH)
                for row in rows:
                    if annotation_id not in self.held:
                        return
                    room = await self._registry.get(RoomKey(annotation_id, row.doc))
                    if not room.owned:
                        return  # loaded as a mirror meanwhile: its promotion drains
                    await room.quiet()
                    applied = self._applied.setdefault(annotation_id, set())
                    if row.id in applied:
                        continue
                    applied.add(row.id)
                    summary = orjson.loads(row.summary) if row.summary else {}
                    room.apply_forwarded(row.data, row.author_id, summary, (row.origin, row.id))
                if len(rows) < DRAIN_BATCH and annotation_id not in self._redrain:
                    return
        finally:
            self._draining.discard(annotation_id)
            if annotation_id in self._redrain:
                self._redrain.discard(annotation_id)
                self._drain_soon(annotation_id)

    # -- leases --------------------------------------------------------------

    async def _keep(self) -> None:
        # A sixth: renewals have five chances before the lease ends, and a
        # mirror notices an ended lease within half a second (at 3 s).
        period = self.lease_seconds / 6
        while True:
            await asyncio.sleep(period)
            try:
                await self._keep_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("lease round failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def _keep_once(self) -> None:
        registry = self._registry
        async with self._pool.acquire() as conn:
            # Give up what no room uses any more (under the annotation's
            # claim lock: a load starting meanwhile claims it again after);
            # renew the rest.
            in_use = {k.annotation_id for k in registry.rooms} | {
                k.annotation_id for k in registry.loading_keys()
            }
            for annotation in [a for a in self.held if a not in in_use]:
                async with self._claims.hold(annotation):
                    if annotation not in self.held or self._in_use(annotation):
                        continue
                    epoch = self.held.pop(annotation)
                    self._applied.pop(annotation, None)
                    await leases.release(conn, annotation, self.owner, epoch)
            renewing = dict(self.held)
            kept = await leases.renew_all(conn, self.owner, renewing, self.lease_seconds)
            for annotation, epoch in renewing.items():
                # (taken again meanwhile under another epoch: not this round's)
                if annotation not in kept and self.held.get(annotation) == epoch:
                    self.lose(annotation)
            self._metrics.leases_held.set(len(self.held))
            self.watched = {a for a, watched in kept.items() if watched}
            mirrored = sorted(
                {k.annotation_id for k, r in registry.rooms.items() if not r.owned}
                - self._promoting
            )
            live = await leases.watch(conn, mirrored, self.lease_seconds)
            for annotation, lease in live.items():
                self.owners[annotation] = lease.url
            orphaned = [a for a in mirrored if a not in live]
            waiting = await inbox.waiting(conn, list(self.held))
            heads = await _heads(conn, [k for k, r in registry.rooms.items() if not r.owned])
        for annotation in waiting:
            self._drain_soon(annotation)
        for key, head in heads.items():
            room = registry.rooms.get(key)
            if room is not None and not room.owned and head > room.version:
                self._follow(key, head)
        for annotation in orphaned:
            self._promoting.add(annotation)
            self._spawn(self._take_over(annotation), f"take over {annotation}")

    def _in_use(self, annotation_id: int) -> bool:
        registry = self._registry
        return any(k.annotation_id == annotation_id for k in registry.rooms) or any(
            k.annotation_id == annotation_id for k in registry.loading_keys()
        )

    def lose(self, annotation_id: int) -> None:
        """Another process owns the annotation now: its rooms here close
        their clients (they reconnect, and send what the log lacks)."""
        epoch = self.held.pop(annotation_id, None)
        log.warning("annotation lease lost", extra={"annotation": annotation_id, "epoch": epoch})
        self._metrics.leases_held.set(len(self.held))
        self._applied.pop(annotation_id, None)
        for room in self.loaded(annotation_id):
            self._registry.reload(room.key, room.version, LEASE_LOST)

    async def _take_over(self, annotation_id: int) -> None:
        """The owner of a mirrored annotation is gone: take it, read the log
        to its head, number versions here from now on, apply the inbox."""
        try:
            async with self._pool.acquire() as conn:
                lease = await leases.acquire(
                    conn, annotation_id, self.owner, self.url, self.lease_seconds
                )
            if lease is None:
                return  # another process was quicker
            self._took(annotation_id, lease.epoch)
            await self.flushed()  # our forwards are in the inbox: applied below
            for room in self.loaded(annotation_id):
                if room.owned:
                    continue
                async with self._pool.acquire() as conn, conn.transaction(readonly=True):
                    async for info, data in oplog.iter_updates(
                        conn, room.key, room.version + 1, None
                    ):
                        room.apply_remote(info.version, data)
                self._registry.promote(room)
                self._consumed.pop(room.key, None)
            for ident in [
                i for i, (r, _) in self._sent.items() if r.key.annotation_id == annotation_id
            ]:
                del self._sent[ident]
            log.info("annotation taken over", extra={"annotation": annotation_id})
            self._drain_soon(annotation_id)
        finally:
            self._promoting.discard(annotation_id)


def default_url(host: str, port: int) -> str:
    """``http://<host>:<port>``; a wildcard bind (0.0.0.0, ::, a container's
    usual) names this machine instead, which other instances can reach
    and which differs between containers."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def _heads(conn: Any, keys: list[RoomKey]) -> dict[RoomKey, int]:
    out: dict[RoomKey, int] = {}
    for key in keys:  # an index probe each; mirrors are few
        out[key] = await oplog.head(conn, key)
    return out
