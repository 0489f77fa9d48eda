"""The room inbox (migration 0013) and the cluster's notifications.

Clients of an instance that does not own their annotation have their
updates forwarded here; the owner applies them as versions and deletes
them in the transaction that commits those versions (the committer:
:func:`consume`). Every instance listens on one channel, :data:`CHANNEL`;
what travels on it is packed by collab/sync/cluster_wire.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

log = logging.getLogger("collab.store.inbox")

#: The one LISTEN/NOTIFY channel of the cluster.
CHANNEL = "collab"


@dataclass(frozen=True, slots=True)
class Forward:
    annotation_id: int
    doc: str
    author_id: int | None
    summary: bytes  # JSON
    data: bytes


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    doc: str
    origin: str
    author_id: int | None
    summary: bytes
    data: bytes


async def forward(
    conn: asyncpg.Connection, origin: str, rows: Sequence[Forward], payloads: Sequence[str]
) -> list[int]:
    """Insert ``rows`` (in order) and send ``payloads`` on :data:`CHANNEL`,
    in the caller's transaction; the new rows' ids, in order."""
    ids = await conn.fetch(
        "INSERT INTO room_inbox (annotation_id, doc, origin, author_id, summary, data) "
        "SELECT a, d, $1, u, s::jsonb, b FROM unnest($2::bigint[], $3::text[], $4::bigint[], "
        "$5::text[], $6::bytea[]) WITH ORDINALITY AS r(a, d, u, s, b, n) ORDER BY n "
        "RETURNING id",
        origin,
        [r.annotation_id for r in rows],
        [r.doc for r in rows],
        [r.author_id for r in rows],
        [r.summary.decode() for r in rows],
        [r.data for r in rows],
    )
    await notify(conn, payloads)
    return sorted(row[0] for row in ids)


async def notify(conn: asyncpg.Connection, payloads: Sequence[str]) -> None:
    if payloads:
        await conn.execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, list(payloads)
        )


async def pending(
    conn: asyncpg.Connection, annotation_id: int, applied: Sequence[int], limit: int
) -> list[InboxRow]:
    """The annotation's forwarded updates, oldest first, but those in
    ``applied`` (taken, their commit not yet through). Not "after the last
    id taken": ids come from a sequence in insertion order, but two
    forwarders' transactions commit in any order."""
    rows = await conn.fetch(
        "SELECT id, doc, origin, author_id, summary::text, data FROM room_inbox "
        "WHERE annotation_id = $1 AND id <> ALL($2::bigint[]) ORDER BY id LIMIT $3",
        annotation_id,
        list(applied),
        limit,
    )
    return [
        InboxRow(r[0], r[1], r[2], r[3], r[4].encode(), bytes(r[5]))  # summary as stored JSON
        for r in rows
    ]


async def waiting(conn: asyncpg.Connection, annotation_ids: Sequence[int]) -> list[int]:
    """Which of ``annotation_ids`` have forwarded updates waiting."""
    if not annotation_ids:
        return []
    rows = await conn.fetch(
        "SELECT DISTINCT annotation_id FROM room_inbox WHERE annotation_id = ANY($1::bigint[])",
        list(annotation_ids),
    )
    return [row[0] for row in rows]


async def consume(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    """Delete forwarded rows now applied as versions (in the commit's transaction)."""
    if ids:
        await conn.execute("DELETE FROM room_inbox WHERE id = ANY($1::bigint[])", list(ids))


async def listen(
    pool: asyncpg.Pool,
    on_payload: Callable[[str], None],
    on_connected: Callable[[], None],
    *,
    retry_max: float = 2.0,
) -> None:
    """Listen on :data:`CHANNEL` until cancelled, on a connection of its
    own; ``on_payload`` gets each notification's payload (it must not
    block). When the connection is lost, connect again (backoff up to
    ``retry_max`` s) and call ``on_connected`` after each (re)connect:
    what was sent meanwhile is missed, and the caller reads the log."""
    delay = 0.05

    def deliver(_conn: object, _pid: int, _channel: str, payload: object) -> None:
        on_payload(str(payload))

    while True:
        lost = asyncio.Event()
        try:
            async with pool.acquire() as conn:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, deliver)
                try:
                    on_connected()
                    delay = 0.05
                    while not lost.is_set():
                        # asyncpg reports a dead peer only when it next talks:
                        # a cheap query every few seconds finds it.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(lost.wait(), 5.0)
                        if not lost.is_set():
                            await asyncio.wait_for(conn.execute("SELECT 1"), 5.0)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.remove_listener(CHANNEL, deliver)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cluster listener lost", extra={"error": f"{type(exc).__name__}: {exc}"})
        await asyncio.sleep(delay)
        delay = min(delay * 2, retry_max)
