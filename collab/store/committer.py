"""Group commit: many concurrent updates share one transaction (one round trip).

Rooms hand records to :meth:`GroupCommitter.submit`, which never blocks. One
task writes everything queued so far in a single ``COPY`` inside one
transaction, then reports the newest durable version of each document
through ``on_durable(key, version)`` (the registry tells the room): the
committer knows records and their keys, never rooms. While a batch commits,
the next one accumulates, so throughput grows with load instead of
collapsing to one fsync per keystroke.

What can go wrong, and what happens (docs/operations.md, "When persistence
fails"):

- **The database is away** (connection lost, restarting, shutting down, too
  many clients): the batch is kept and retried with backoff, forever. A
  commit whose answer was lost may have landed: before retrying, the records
  already stored are dropped from the batch (never numbered twice, never
  refused as duplicates). Writers keep being accepted up to the queue limit;
  nothing is acknowledged meanwhile. ``failure`` names the cause.
- **The database refuses one record** (a data exception: cannot happen for
  what rooms build, but a bug must not take others down): the batch is split
  until the refused record is alone; everything else commits. The refused
  record and the later records of its document are dropped and the owner is
  told (``on_refused(key, version, reason)``): the room is reloaded from
  what is stored and its clients resync, sending again what they have.
- **The database refuses every write** (a missing table, permissions, a
  read-only server) or the loop itself breaks: ``failure`` is set, the server
  stops acknowledging and accepting writes (``on_failure``), ``flush`` raises
  :class:`~collab.errors.Unavailable`, ``/healthz`` answers 503 naming the
  cause, and the batch is retried with backoff until it commits; then
  everything resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import asyncpg

from collab.errors import Unavailable
from collab.store import inbox, leases, oplog
from collab.store.database import first_line as _first_line
from collab.store.database import is_transient

if TYPE_CHECKING:
    from collab.document.log import RoomKey, UpdateRecord
    from collab.metrics import Metrics

log = logging.getLogger("collab.store.committer")

#: Longest pause between two retries of a batch, seconds.
RETRY_MAX_SECONDS = 2.0
#: How long shutdown keeps retrying to write what is queued, seconds.
FINAL_FLUSH_SECONDS = 10.0


#: Why records are refused when their writer no longer holds the annotation.
LEASE_LOST = "the annotation's lease was lost (another instance owns it now)"


class Fencing(Protocol):
    """What the committer checks and tells with several instances
    (collab/sync/cluster.py): the lease each version is written under, and
    the notifications its commit sends."""

    owner: str
    #: How long a commit's transaction may idle between statements (a
    #: paused writer's session is ended by PostgreSQL after it).
    lease_seconds: float

    def epoch_of(self, annotation_id: int) -> int | None:
        """The epoch under which this process holds the annotation, if it does."""

    def announce(self, records: Sequence[UpdateRecord], watched: set[int]) -> list[str]:
        """The notifications for ``records`` committed (``watched``: the
        annotations another instance serves clients of)."""

    def committed(self, records: Sequence[UpdateRecord]) -> None:
        """``records`` are committed (their forwarded rows deleted)."""


def _is_data_error(exc: BaseException) -> bool:
    """A refusal of the values of some record (SQLSTATE class 22 or 23)."""
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state[:2] in ("22", "23")


class GroupCommitter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        metrics: Metrics,
        *,
        batch_max: int,
        queue_max: int,
        on_durable: Callable[[RoomKey, int], None] | None = None,
        on_snapshot_due: Callable[[RoomKey, int], None] | None = None,
        on_refused: Callable[[RoomKey, int, str], None] | None = None,
        on_failure: Callable[[str | None], None] | None = None,
        fencing: Fencing | None = None,
    ) -> None:
        """``on_durable(key, version)``: every version of ``key`` up to
        ``version`` is committed; ``on_snapshot_due(key, version)``: a
        record marked due is committed; ``on_refused(key, version,
        reason)``: the database refused that record (it and the later
        records of ``key`` are dropped); ``on_failure(reason or None)``:
        persistence started or stopped failing."""
        self._pool = pool
        self._metrics = metrics
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._queue: deque[UpdateRecord] = deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._room_space = asyncio.Event()
        self._room_space.set()
        self._failed = asyncio.Event()
        self._on_durable = on_durable
        self._on_snapshot_due = on_snapshot_due
        self._on_refused = on_refused
        self._on_failure = on_failure
        #: Several instances: every version is written under its annotation's
        #: lease, checked in the commit's transaction (None: tests of the
        #: committer alone).
        self.fencing = fencing
        #: Why nothing is being committed right now (None while all is well).
        self.failure: str | None = None
        #: True when the failure is not a passing outage: writes are refused.
        self.refusing_writes = False
        self.failing_since: float | None = None

    def submit(self, record: UpdateRecord) -> None:
        self._queue.append(record)
        self._drained.clear()
        if len(self._queue) >= self._queue_max:
            self._room_space.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def wait_for_space(self) -> None:
        """Writers await this before reading more input: bounded memory under overload."""
        await self._room_space.wait()

    async def flush(self) -> None:
        """Wait until everything submitted so far is committed; raise
        :class:`Unavailable` instead of waiting while writes are refused."""
        while not self._drained.is_set():
            if self.failure is not None:
                raise Unavailable(f"not saving: {self.failure}")
            drained = asyncio.ensure_future(self._drained.wait())
            failed = asyncio.ensure_future(self._failed.wait())
            try:
                await asyncio.wait({drained, failed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                drained.cancel()
                failed.cancel()

    async def run(self) -> None:
        """The committer loop, supervised: runs until cancelled, then writes
        what is left. An unexpected error is a failure (reported, retried),
        never the end of the loop."""
        delay = 0.05
        try:
            while True:
                try:
                    await self._wake.wait()
                    self._wake.clear()
                    while self._queue:
                        await self._commit_next()
                    self._drained.set()
                    delay = 0.05
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("committer loop failed; restarting it")
                    self._fail(f"committer error: {type(exc).__name__}: {exc}", refuse=True)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    self._wake.set()
        finally:
            if self._queue:
                await asyncio.shield(self._final_flush())

    async def _final_flush(self) -> None:
        """At shutdown: write what is left, giving up after a bounded time
        (what is not written was never acknowledged)."""
        deadline = time.monotonic() + FINAL_FLUSH_SECONDS
        while self._queue and time.monotonic() < deadline:
            await self._commit_next(deadline=deadline)
        if self._queue:
            log.error("shutting down with records not written", extra={"count": len(self._queue)})
        self._drained.set()

    # -- one batch ------------------------------------------------------------

    async def _commit_next(self, deadline: float | None = None) -> None:
        batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._batch_max))]
        started = time.perf_counter()
        delay = 0.05
        retried = False
        while batch:
            try:
                committed, refused = await self._write(batch, dedupe=retried)
                break
            except Exception as exc:
                retried = True
                transient = is_transient(exc)
                self._fail(
                    f"database {'unreachable' if transient else 'refuses writes'}: "
                    f"{type(exc).__name__}: {_first_line(exc)}",
                    refuse=not transient,
                )
                log.error(
                    "commit failed, retrying",
                    extra={"error": self.failure, "batch": len(batch), "transient": transient},
                )
                if deadline is not None and time.monotonic() + delay > deadline:
                    self._queue.extendleft(reversed(batch))
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
        else:
            committed, refused = [], []
        self._recover()
        elapsed = time.perf_counter() - started
        self._metrics.commit_seconds.observe(elapsed)
        self._metrics.committed.inc(len(committed))
        self._metrics.batch_size.observe(len(committed))
        newest: dict[RoomKey, int] = {}
        for record in committed:
            newest[record.key] = record.version
        for key, version in newest.items():
            self._durable(key, version)
        if self._on_snapshot_due is not None:
            for record in committed:
                if record.snapshot_due:
                    self._on_snapshot_due(record.key, record.version)
        for key, version, reason in refused:
            self._refuse(key, version, reason)
        if len(self._queue) < self._queue_max // 2:
            self._room_space.set()

    async def _write(
        self, batch: list[UpdateRecord], *, dedupe: bool
    ) -> tuple[list[UpdateRecord], list[tuple[RoomKey, int, str]]]:
        """Commit ``batch``; returns what was committed and what the database
        refused (key, version, reason). Raises for whole-batch failures."""
        if dedupe:
            batch = await self._without_stored(batch)
        try:
            unheld = await self._append(batch)
            if unheld:
                first: dict[RoomKey, int] = {}
                for record in batch:
                    if record.key.annotation_id in unheld:
                        first.setdefault(record.key, record.version)
                kept = [r for r in batch if r.key.annotation_id not in unheld]
                return kept, [(key, version, LEASE_LOST) for key, version in first.items()]
            return batch, []
        except Exception as exc:
            if not _is_data_error(exc):
                raise
            if len(batch) == 1:
                record = batch[0]
                return [], [(record.key, record.version, _first_line(exc))]
            reason = _first_line(exc)
        log.warning("a record was refused; isolating it", extra={"error": reason})
        half = len(batch) // 2
        first_ok, first_bad = await self._write(batch[:half], dedupe=False)
        rest = batch[half:]
        if first_bad:
            # The later records of a refused record's document are not
            # written (they may depend on it): its clients send them again.
            lost = {key for key, _, _ in first_bad}
            rest = [record for record in rest if record.key not in lost]
        second_ok, second_bad = await self._write(rest, dedupe=False) if rest else ([], [])
        return first_ok + second_ok, first_bad + second_bad

    async def _append(self, records: Sequence[UpdateRecord]) -> set[int]:
        """Write ``records`` in one transaction: those of annotations whose
        lease this process still holds (the fence), deleting the forwarded
        updates they apply and announcing them; the annotations whose lease
        was lost (their records are not written)."""
        fencing = self.fencing
        async with self._pool.acquire() as conn, conn.transaction():
            if fencing is None:
                await oplog.append(conn, records)
                return set()
            epochs: dict[int, int] = {}
            lost: set[int] = set()
            for record in records:
                annotation = record.key.annotation_id
                if annotation not in epochs and annotation not in lost:
                    epoch = fencing.epoch_of(annotation)
                    if epoch is None:
                        lost.add(annotation)
                    else:
                        epochs[annotation] = epoch
            held = await leases.fence(conn, fencing.owner, epochs, fencing.lease_seconds)
            lost.update(a for a in epochs if a not in held)
            if lost:
                records = [r for r in records if r.key.annotation_id not in lost]
            if records:
                await oplog.append(conn, records)
            await inbox.consume(conn, [i for r in records for _, i in r.inbox])
            await inbox.notify(
                conn, fencing.announce(records, {a for a, watched in held.items() if watched})
            )
        fencing.committed(records)
        return lost

    async def _without_stored(self, batch: list[UpdateRecord]) -> list[UpdateRecord]:
        """The batch less the records a commit whose answer was lost did store."""
        async with self._pool.acquire() as conn:
            stored = await oplog.stored_versions(conn, batch)
        if not stored:
            return batch
        log.info("records already stored by an earlier attempt", extra={"count": len(stored)})
        keep = []
        for record in batch:
            if (record.key.annotation_id, record.key.doc, record.version) in stored:
                self._durable(record.key, record.version)
            else:
                keep.append(record)
        return keep

    def _durable(self, key: RoomKey, version: int) -> None:
        if self._on_durable is not None:
            self._on_durable(key, version)

    def _refuse(self, key: RoomKey, version: int, reason: str) -> None:
        self._metrics.refused_records.inc()
        log.error(
            "the database refused a record; its room reloads",
            extra={
                "annotation": key.annotation_id,
                "doc": key.doc,
                "version": version,
                "error": reason,
            },
        )
        left = [record for record in self._queue if record.key != key]
        if len(left) != len(self._queue):
            self._queue = deque(left)
        if self._on_refused is not None:
            self._on_refused(key, version, reason)

    # -- health ---------------------------------------------------------------

    def _fail(self, reason: str, *, refuse: bool) -> None:
        changed = self.failure is None or refuse != self.refusing_writes
        self.failure = reason
        self.refusing_writes = self.refusing_writes or refuse
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        if refuse:
            self._failed.set()
        self._metrics.persistence_failing.set(1)
        if changed and self._on_failure is not None:
            self._on_failure(reason)

    def _recover(self) -> None:
        if self.failure is None:
            return
        log.warning(
            "persistence recovered",
            extra={"after_s": round(time.monotonic() - (self.failing_since or 0), 2)},
        )
        self.failure = None
        self.refusing_writes = False
        self.failing_since = None
        self._failed.clear()
        self._metrics.persistence_failing.set(0)
        if self._on_failure is not None:
            self._on_failure(None)
