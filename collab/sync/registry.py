"""The rooms loaded in this process: load on first join, unload when idle.

:class:`RoomRegistry` is an async context manager that owns the group
committer and the idle reaper in one TaskGroup; leaving it flushes every
pending update before returning.

The registry names no document kind: the app hands it the :class:`Kinds`
it serves, and a room opens through its kind's record
(collab/document/kind.py): its roots, its repairer, the worker-side read
of a large document's index, when a loaded room is large.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

from collab.config import Settings
from collab.document.kind import Kinds
from collab.document.log import RoomKey, UpdateRecord
from collab.errors import Unavailable
from collab.gc_policy import settle
from collab.metrics import Metrics
from collab.store import oplog
from collab.store.committer import LEASE_LOST, GroupCommitter
from collab.store.database import Database
from collab.store.snapshots import Snapshotter
from collab.sync.budget import ByteBudget
from collab.sync.cluster import Cluster
from collab.sync.room import FreshAnswer, LazyFrame, Room
from collab.workers import Workers

log = logging.getLogger("collab.sync.registry")

#: Close code for the clients of a room that is reloaded from storage (they reconnect).
CLOSE_RELOAD = 1012
#: How fast a fresh client's answer from stored bytes is assumed to leave.
ANSWER_BYTES_PER_S = 100e6


class Loading:
    """A room being loaded: first its stored bytes, then the live room.

    Joiners whose client has nothing yet (an empty state vector) are answered
    from ``stored`` before the document is built; each joiner registers with
    :meth:`answering` while it waits for its client's first frame and writes
    that answer, and the build waits for them (at most half a second: a
    client that sends nothing first only delays this room's load).
    """

    def __init__(self, key: RoomKey) -> None:
        loop = asyncio.get_running_loop()
        self.key = key
        self.stored: asyncio.Future[oplog.StoredState] = loop.create_future()
        self.room: asyncio.Future[Room] = loop.create_future()
        self._answering = 0
        self._answered = asyncio.Event()
        self._answered.set()
        self._parts: list[tuple[int, bytes]] | None = None
        self._fresh = FreshAnswer()

    def fresh_answer(self, stored: oplog.StoredState) -> list[LazyFrame]:
        """The frames for a client that has nothing, from the stored bytes (built once)."""
        if self._parts is None:
            self._parts = stored.parts()
        return self._fresh.frames(self._parts)

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        self._answering += 1
        self._answered.clear()
        try:
            yield
        finally:
            self._answering -= 1
            if self._answering == 0:
                self._answered.set()

    async def wait_answered(self, grace: float) -> None:
        await asyncio.sleep(0)  # joiners waiting on ``stored`` register first
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._answered.wait(), grace)


class RoomRegistry:
    def __init__(
        self,
        pool: Database,
        settings: Settings,
        metrics: Metrics,
        workers: Workers,
        kinds: Kinds,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._metrics = metrics
        self._workers = workers
        #: Called with (key, version) when a version of a document of that
        #: kind is durable (a kind's follower: the segmentation's materialiser).
        self._durable_listeners: dict[str, list[Callable[[RoomKey, int], None]]] = {}
        #: The document kinds served (the app's list); rooms open through them.
        self.kinds = kinds
        self.snapshotter = Snapshotter(pool, workers, metrics, kinds, on_stored=self._rebase)
        #: Frames of a whole large document (a fresh client's first sync) are
        #: built and written within a byte budget: twenty clients opening a
        #: million-node document at once hold one copy, not twenty.
        self.large_sends = ByteBudget()
        #: This process among others over the same database: leases, mirrors, forwards.
        self.cluster = Cluster(pool, settings, metrics, self)
        self.committer = GroupCommitter(
            pool.pool,
            metrics,
            batch_max=settings.commit_batch_max,
            queue_max=settings.commit_queue_max,
            on_durable=self._durable,
            on_snapshot_due=self.snapshotter.request,
            on_refused=self._reload,
            on_failure=self._persistence_changed,
            fencing=self.cluster,
        )
        self.rooms: dict[RoomKey, Room] = {}
        self._loading: dict[RoomKey, Loading] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._committer_task: asyncio.Task[None] | None = None
        self._reaper_task: asyncio.Task[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._cluster_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RoomRegistry:
        self._tg = asyncio.TaskGroup()
        await self._tg.__aenter__()
        self._committer_task = self._tg.create_task(self.committer.run(), name="committer")
        self._reaper_task = self._tg.create_task(self._reap(), name="room-reaper")
        self._snapshot_task = self._tg.create_task(self.snapshotter.run(), name="snapshotter")
        self._cluster_task = self._tg.create_task(self.cluster.run(self._tg), name="cluster")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._tg is not None
        if self._reaper_task:
            self._reaper_task.cancel()
        if self._snapshot_task:
            self._snapshot_task.cancel()  # pending snapshots only shorten later loads
        try:
            await self.committer.flush()
        except Unavailable as exc:
            log.error("shutting down while not saving", extra={"error": exc.message})
        if self._committer_task:
            self._committer_task.cancel()
        if self._cluster_task:
            self._cluster_task.cancel()
        await self._tg.__aexit__(None, None, None)
        await self.cluster.release_all()
        for room in self.rooms.values():
            room.close()
        self.rooms.clear()
        self._metrics.rooms.set(0)

    def loading(self, key: RoomKey) -> Loading | None:
        """The load in progress for ``key``, starting one if the room is not loaded."""
        if key in self.rooms:
            return None
        current = self._loading.get(key)
        if current is None:
            assert self._tg is not None
            current = Loading(key)
            self._loading[key] = current
            self._tg.create_task(self._load(current), name=f"load {key}")
        return current

    async def get(self, key: RoomKey) -> Room:
        """The loaded room for ``key``, loading it once however many join at once."""
        room = self.rooms.get(key)
        if room is not None:
            return room
        loading = self.loading(key)
        assert loading is not None
        return await asyncio.shield(loading.room)

    @contextlib.asynccontextmanager
    async def hold(self, key: RoomKey) -> AsyncIterator[Room]:
        """Use a room outside a socket (restore, revert); it is not unloaded meanwhile."""
        room = await self.get(key)
        room.holds += 1
        try:
            yield room
        finally:
            room.holds -= 1
            if not room.peers:
                room.idle_since = time.monotonic()  # idle from now, not from before the hold

    async def _load(self, loading: Loading) -> None:
        key = loading.key
        started = time.perf_counter()
        try:
            kind = self.kinds[key.doc]
            # Owned here, or served as a mirror of the owning instance (its
            # owner is asked to announce versions before the log is read).
            owned = await self.cluster.claim(key.annotation_id)
            async with self._pool.acquire() as conn:
                state = await oplog.load(conn, key)
            loading.stored.set_result(state)
            fetched = time.perf_counter()
            size = len(state.snapshot or b"") + sum(len(u) for u in state.updates)
            # A large document's index is read from the same bytes in a
            # worker while the document is built here: reading it back out
            # of yrs would hold the GIL for as long (a million-node skeleton:
            # ~16 s; turning the worker's lists into the index: ~2 s).
            index_job = (
                asyncio.ensure_future(
                    self._workers.run(kind.index_in_worker, state.snapshot, state.updates)
                )
                if kind.index_in_worker is not None and size >= kind.index_in_worker_bytes
                else None
            )
            try:
                # Let joiners answer fresh clients from the stored bytes before
                # the (CPU-bound, GIL-holding) build of the document below;
                # a large answer gets time to leave (~100 MB/s, at most 5 s).
                await loading.wait_answered(grace=min(0.5 + size / ANSWER_BYTES_PER_S, 5.0))
                answered = time.perf_counter()
                doc = kind.new_doc(state.snapshot)
                for update in state.updates:
                    doc.apply_update(update)
                repairer = None
                if kind.repairer is not None and owned:
                    source = await index_job if index_job is not None else None
                    repairer = kind.repairer(doc, source, self._settings)
            finally:
                if index_job is not None and not index_job.done():
                    index_job.cancel()
            room = Room(
                key,
                doc,
                state.head,
                self.committer,
                kind=kind,
                snapshot_every=self._settings.snapshot_every,
                on_update=self._counted,
                repairer=repairer,
                max_bytes=self._settings.max_document_bytes,
            )
            room.state_parts = None
            room.rebase_from(state.parts())
            room.on_awareness = self.cluster.publish_awareness
            if not owned:
                room.owned = False
                room.forwarding = self.cluster
        except BaseException as exc:
            for future in (loading.stored, loading.room):
                if not future.done():
                    future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning
            del self._loading[key]
            if not isinstance(exc, Exception):
                raise
            log.exception(
                "room failed to load", extra={"annotation": key.annotation_id, "doc": key.doc}
            )
            return
        self.rooms[key] = room
        del self._loading[key]
        if kind.is_large is not None and kind.is_large(doc):
            settle()
        self._metrics.rooms.set(len(self.rooms))
        loading.room.set_result(room)
        self.cluster.room_loaded(room)
        log.info(
            "room loaded",
            extra={
                "annotation": key.annotation_id,
                "doc": key.doc,
                "version": state.head,
                "tail": len(state.updates),
                "bytes": len(state.snapshot or b"") + sum(len(u) for u in state.updates),
                "fetch_ms": round((fetched - started) * 1000, 2),
                "answer_ms": round((answered - fetched) * 1000, 2),
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    def listen_durable(self, doc: str, callback: Callable[[RoomKey, int], None]) -> None:
        """Call ``callback(key, version)`` whenever a version of a ``doc``
        document is durable (after its room said ``saved``). It must not
        block: a follower notes the key and does its work in its own task."""
        self._durable_listeners.setdefault(doc, []).append(callback)

    def loading_keys(self) -> list[RoomKey]:
        return list(self._loading)

    def promote(self, room: Room) -> None:
        """A mirror's instance took its annotation over: the room commits here now."""
        repairer = None
        if room.kind.repairer is not None:
            repairer = room.kind.repairer(room.doc, None, self._settings)
        room.promote(self.committer, repairer)
        self.durable(room.key, room.version)

    def durable(self, key: RoomKey, version: int) -> None:
        """``version`` of ``key`` is durable (committed here, or read from
        the log by a mirror)."""
        self._durable(key, version)

    def reload(self, key: RoomKey, version: int, reason: str) -> None:
        """Unload the room and close its clients (they reconnect)."""
        self._reload(key, version, reason)

    def _durable(self, key: RoomKey, version: int) -> None:
        """The committer made ``version`` of ``key`` durable: its room says
        ``saved`` to the peers that asked. (A room with unsaved records is
        never unloaded; a version past the room's own belongs to a room
        since reloaded and is not this one's to acknowledge.)"""
        room = self.rooms.get(key)
        if room is not None and version <= room.version:
            room.mark_saved(version)
        for callback in self._durable_listeners.get(key.doc, ()):
            callback(key, version)

    def _reload(self, key: RoomKey, version: int, reason: str) -> None:
        """The database refused ``version`` of ``key``: unload the room (it
        reloads from what is stored) and close its clients, which reconnect
        and send again what the stored state lacks."""
        if reason == LEASE_LOST and key.annotation_id in self.cluster.held:
            self.cluster.lose(key.annotation_id)  # every room of the annotation goes
        room = self.rooms.pop(key, None)
        if room is None:
            return
        room.close()
        self.cluster.room_unloaded(key)
        message = (
            "annotation moved to another instance; reconnect"
            if reason == LEASE_LOST
            else f"document reloaded: version {version} refused by storage"
        )
        for peer in list(room.peers):
            peer.close(CLOSE_RELOAD, message)
        self._metrics.rooms.set(len(self.rooms))

    def _persistence_changed(self, failure: str | None) -> None:
        """Writers are told when the server stops accepting writes: they keep
        their changes and reconnect (1013) until it saves again."""
        if failure is None or not self.committer.refusing_writes:
            return
        for room in self.rooms.values():
            for peer in list(room.peers):
                if peer.can_write:
                    peer.close(Unavailable.close_code, f"not saving: {failure}"[:120])

    def _rebase(self, key: RoomKey, version: int, snapshot: bytes) -> None:
        room = self.rooms.get(key)
        if room is not None:
            room.rebase(version, snapshot)

    def _counted(self, room: Room, record: UpdateRecord) -> None:
        self._metrics.updates.inc()

    async def _reap(self) -> None:
        idle = self._settings.room_idle_seconds
        period = min(1.0, max(idle / 2, 0.05))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for key, room in list(self.rooms.items()):
                if (
                    not room.peers
                    and room.holds == 0
                    and not room.unsaved
                    and room.idle_since is not None
                    and now - room.idle_since >= idle
                ):
                    del self.rooms[key]
                    room.close()
                    self.cluster.room_unloaded(key)
                    log.info(
                        "room unloaded", extra={"annotation": key.annotation_id, "doc": key.doc}
                    )
            self._metrics.rooms.set(len(self.rooms))
