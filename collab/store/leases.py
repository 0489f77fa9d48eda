"""Annotation leases with fencing (migration 0013): which process owns an
annotation, until when, under which epoch (docs/architecture.md, "Several
instances").

An owner is ``"<url>#<incarnation>"``: the url other instances reach it at,
and a token of this start. A process restarted at the same url takes its
predecessor's leases at once (under a new epoch) instead of waiting for
them to expire: two live processes cannot listen at one address, so the
old one is gone.

The clock is PostgreSQL's (``clock_timestamp()``), never an instance's: instances'
clocks may disagree, the database's is one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True, slots=True)
class Lease:
    owner: str
    #: Where other instances reach the owner.
    url: str
    #: The fencing token: what every version this owner writes is checked against.
    epoch: int
    expires_at: datetime


def _lease(row: asyncpg.Record | None) -> Lease | None:
    if row is None:
        return None
    return Lease(row["owner"], row["url"], row["epoch"], row["expires_at"])


async def acquire(
    conn: asyncpg.Connection, annotation_id: int, owner: str, url: str, seconds: float
) -> Lease | None:
    """Take the annotation's lease for ``seconds``, or renew it if ``owner``
    holds it: None while another live process holds it. Taking it from
    another owner (expired, or an earlier start at the same url) moves the
    epoch on; the same owner keeps its."""
    row = await conn.fetchrow(
        "INSERT INTO annotation_leases AS l (annotation_id, owner, url, epoch, expires_at) "
        "VALUES ($1, $2, $3, 1, clock_timestamp() + make_interval(secs => $4)) "
        "ON CONFLICT (annotation_id) DO UPDATE SET owner = EXCLUDED.owner, url = EXCLUDED.url, "
        "epoch = l.epoch + CASE WHEN l.owner = EXCLUDED.owner THEN 0 ELSE 1 END, "
        "expires_at = EXCLUDED.expires_at "
        "WHERE l.owner = EXCLUDED.owner OR l.url = EXCLUDED.url OR l.expires_at < clock_timestamp() "
        "RETURNING owner, url, epoch, expires_at",
        annotation_id,
        owner,
        url,
        seconds,
    )
    return _lease(row)


async def renew_all(
    conn: asyncpg.Connection, owner: str, held: dict[int, int], seconds: float
) -> dict[int, bool]:
    """Extend every lease in ``held`` (annotation → epoch) still held: the
    annotations whose lease was kept, each with whether another instance
    watches it. The others were lost: their rooms must stop writing."""
    if not held:
        return {}
    rows = await conn.fetch(
        "UPDATE annotation_leases l SET expires_at = clock_timestamp() + make_interval(secs => $4) "
        "FROM unnest($2::bigint[], $3::bigint[]) AS h(a, e) "
        "WHERE l.annotation_id = h.a AND l.epoch = h.e AND l.owner = $1 AND l.expires_at > clock_timestamp() "
        "RETURNING l.annotation_id, l.watched_until > clock_timestamp()",
        owner,
        list(held),
        list(held.values()),
        seconds,
    )
    return {row[0]: row[1] for row in rows}


async def watch(
    conn: asyncpg.Connection, annotation_ids: Sequence[int], seconds: float
) -> dict[int, Lease]:
    """This process serves clients of ``annotation_ids`` without owning them:
    their owners announce versions for ``seconds`` more. The live leases
    (read without waiting: a row locked by its owner's commit is marked
    next round, with time to spare)."""
    if not annotation_ids:
        return {}
    ids = list(annotation_ids)
    await conn.execute(
        "WITH free AS (SELECT annotation_id FROM annotation_leases "
        "WHERE annotation_id = ANY($1::bigint[]) FOR UPDATE SKIP LOCKED) "
        "UPDATE annotation_leases l SET watched_until = clock_timestamp() + make_interval(secs => $2) "
        "FROM free WHERE l.annotation_id = free.annotation_id AND l.expires_at > clock_timestamp()",
        ids,
        seconds,
    )
    rows = await conn.fetch(
        "SELECT annotation_id, owner, url, epoch, expires_at FROM annotation_leases "
        "WHERE annotation_id = ANY($1::bigint[]) AND expires_at > clock_timestamp()",
        ids,
    )
    return {row["annotation_id"]: Lease(*row[1:]) for row in rows}


async def fence(
    conn: asyncpg.Connection, owner: str, held: dict[int, int], idle_seconds: float
) -> dict[int, bool]:
    """The fence, inside the transaction that writes versions: of ``held``
    (annotation → epoch), those the writer still holds, each with whether
    another instance watches it. A shared row lock keeps a taker out until
    that transaction ends.

    The transaction may then idle at most ``idle_seconds`` between its
    statements (``idle_in_transaction_session_timeout``, for it alone): a
    writer paused mid-commit (SIGSTOP) would otherwise hold the lock, and
    every taker with it, until it woke; PostgreSQL ends its session
    instead, and nothing of it is written."""
    if not held:
        return {}
    rows = await conn.fetch(
        "SELECT l.annotation_id, l.watched_until > clock_timestamp() FROM annotation_leases l "
        "JOIN unnest($2::bigint[], $3::bigint[]) AS h(a, e) "
        "ON l.annotation_id = h.a AND l.epoch = h.e "
        "WHERE l.owner = $1 AND l.expires_at > clock_timestamp() "
        "AND set_config('idle_in_transaction_session_timeout', $4, true) IS NOT NULL "
        "FOR SHARE OF l",
        owner,
        list(held),
        list(held.values()),
        str(max(1, round(idle_seconds * 1000))),
    )
    return {row[0]: row[1] for row in rows}


async def release(conn: asyncpg.Connection, annotation_id: int, owner: str, epoch: int) -> None:
    """Give the annotation up (a clean close): another instance may take it at once."""
    await conn.execute(
        "UPDATE annotation_leases SET expires_at = clock_timestamp() - interval '1 second' "
        "WHERE annotation_id = $1 AND owner = $2 AND epoch = $3",
        annotation_id,
        owner,
        epoch,
    )


async def owner_of(conn: asyncpg.Connection, annotation_id: int) -> Lease | None:
    """The annotation's unexpired lease, if any."""
    row = await conn.fetchrow(
        "SELECT owner, url, epoch, expires_at FROM annotation_leases "
        "WHERE annotation_id = $1 AND expires_at > clock_timestamp()",
        annotation_id,
    )
    return _lease(row)
