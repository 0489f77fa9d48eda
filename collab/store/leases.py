"""Room leases with fencing (migration 0012): which instance owns a room,
until when, under which epoch. The first piece of several instances over
one database; rooms do not take leases yet (docs/architecture.md).

The clock is PostgreSQL's (``now()``), never an instance's: instances'
clocks may disagree, the database's is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from collab.document.log import RoomKey


@dataclass(frozen=True, slots=True)
class Lease:
    owner: str
    #: The fencing token: what every version this owner writes is checked against.
    epoch: int
    expires_at: datetime


async def acquire(
    conn: asyncpg.Connection, key: RoomKey, owner: str, seconds: float
) -> Lease | None:
    """Take the room's lease for ``seconds``, or renew it if ``owner`` holds
    it: None while another instance holds an unexpired one. Taking it from
    another owner (expired) moves the epoch on; the same owner keeps its."""
    row = await conn.fetchrow(
        "INSERT INTO room_leases AS l (annotation_id, doc, owner, epoch, expires_at) "
        "VALUES ($1, $2, $3, 1, now() + make_interval(secs => $4)) "
        "ON CONFLICT (annotation_id, doc) DO UPDATE SET owner = EXCLUDED.owner, "
        "epoch = l.epoch + CASE WHEN l.owner = EXCLUDED.owner THEN 0 ELSE 1 END, "
        "expires_at = EXCLUDED.expires_at "
        "WHERE l.owner = EXCLUDED.owner OR l.expires_at < now() "
        "RETURNING owner, epoch, expires_at",
        key.annotation_id,
        key.doc,
        owner,
        seconds,
    )
    return None if row is None else Lease(row["owner"], row["epoch"], row["expires_at"])


async def renew(
    conn: asyncpg.Connection, key: RoomKey, lease: Lease, seconds: float
) -> Lease | None:
    """Extend a lease still held (same owner and epoch, not expired); None
    when it was lost: the room must stop writing at once."""
    row = await conn.fetchrow(
        "UPDATE room_leases SET expires_at = now() + make_interval(secs => $5) "
        "WHERE annotation_id = $1 AND doc = $2 AND owner = $3 AND epoch = $4 "
        "AND expires_at > now() RETURNING owner, epoch, expires_at",
        key.annotation_id,
        key.doc,
        lease.owner,
        lease.epoch,
        seconds,
    )
    return None if row is None else Lease(row["owner"], row["epoch"], row["expires_at"])


async def holds(conn: asyncpg.Connection, key: RoomKey, lease: Lease) -> bool:
    """The fence: inside the transaction that writes a version, whether the
    writer still holds the room (a shared row lock keeps a taker out until
    that transaction ends)."""
    found = await conn.fetchval(
        "SELECT 1 FROM room_leases WHERE annotation_id = $1 AND doc = $2 AND owner = $3 "
        "AND epoch = $4 AND expires_at > now() FOR SHARE",
        key.annotation_id,
        key.doc,
        lease.owner,
        lease.epoch,
    )
    return found is not None


async def release(conn: asyncpg.Connection, key: RoomKey, lease: Lease) -> None:
    """Give the room up (a clean close): another instance may take it at once."""
    await conn.execute(
        "UPDATE room_leases SET expires_at = now() - interval '1 second' "
        "WHERE annotation_id = $1 AND doc = $2 AND owner = $3 AND epoch = $4",
        key.annotation_id,
        key.doc,
        lease.owner,
        lease.epoch,
    )


async def owner_of(conn: asyncpg.Connection, key: RoomKey) -> Lease | None:
    """The room's unexpired lease, if any."""
    row = await conn.fetchrow(
        "SELECT owner, epoch, expires_at FROM room_leases WHERE annotation_id = $1 "
        "AND doc = $2 AND expires_at > now()",
        key.annotation_id,
        key.doc,
    )
    return None if row is None else Lease(row["owner"], row["epoch"], row["expires_at"])
