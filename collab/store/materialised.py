"""Bricks a document materialises beside its log (a segmentation's voxels),
versioned like the log: what a kind's materialiser writes and readers read.

Generic: a row is (annotation, doc, layer, mag, brick, version, bytes); the
kind decides what the bytes are. The bricks of one version are written in
one transaction with the document's materialised version.

Several processes may materialise one document at once (several instances
over one database, each following the versions its clients made or a
reader asked for). A version is written once: :func:`write_version` locks
the document's ``materialised_versions`` row first thing in its
transaction and writes nothing when that row already holds the version
(or a later one) — another process got there first, and its rows stand.
Why the row and not an advisory lock: the transaction updates that row at
its end anyway, so the lock costs one ``SELECT … FOR UPDATE`` (one round
trip, no tuple written) and shares no key space with the advisory locks
used elsewhere (7301, 7302, migrations; annotation ids are bigint and
would not fit the two-key form); under READ COMMITTED the locking read
waits for a concurrent writer and then returns the version it committed.
Why a check at the write and not a lock over the whole computation: that
would hold a connection while painting (the pool may have two, one of them
the committer's) and a lock a stalled process keeps; here a process that
lost only drops its work and reads what the winner stored. What a version
wrote is found again by :func:`version_rows` (the bricks its ops reach, or
every row of the version) for watchers of a process that did not write it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from collab.document.log import RoomKey

Brick = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class BrickRow:
    layer: str
    mag: str
    brick: Brick
    data: bytes


@dataclass(frozen=True, slots=True)
class OpRow:
    """An applied op: the version that added it, its order within that
    version, and the bricks it may change at ``mag`` (``b0 ≤ b ≤ b1``;
    ``bricks`` lists them where far fewer than the box, a brush stroke).
    ``deleted_at``: the version that deleted it (an undo), None while it
    stands."""

    op: str
    version: int
    seq: int
    layer: str
    mag: str
    b0: Brick
    b1: Brick
    bricks: tuple[Brick, ...] | None = None
    deleted_at: int | None = None


async def materialised_version(conn: asyncpg.Connection, key: RoomKey) -> int:
    """The last version whose bricks are all written (0: none)."""
    found = await conn.fetchval(
        "SELECT version FROM materialised_versions WHERE annotation_id = $1 AND doc = $2",
        key.annotation_id,
        key.doc,
    )
    return int(found or 0)


async def _lock_materialised(conn: asyncpg.Connection, key: RoomKey) -> int:
    """Inside a transaction: lock the document's ``materialised_versions``
    row until it ends and return its version as last committed (a writer
    of it in flight is waited for). The first version makes the row (at 0),
    so two first writers queue on it as well."""
    found = await conn.fetchval(
        "SELECT version FROM materialised_versions WHERE annotation_id = $1 AND doc = $2 "
        "FOR UPDATE",
        key.annotation_id,
        key.doc,
    )
    if found is None:
        # ON CONFLICT waits for a concurrent insert and then locks its row:
        # the version it returns is the one that writer committed.
        found = await conn.fetchval(
            "INSERT INTO materialised_versions AS m (annotation_id, doc, version) "
            "VALUES ($1, $2, 0) ON CONFLICT (annotation_id, doc) DO UPDATE SET version = m.version "
            "RETURNING version",
            key.annotation_id,
            key.doc,
        )
    return int(found)


async def write_version(
    conn: asyncpg.Connection,
    key: RoomKey,
    version: int,
    rows: Sequence[BrickRow],
    added: Sequence[OpRow] = (),
    deleted: Sequence[str] = (),
) -> bool:
    """The bricks ``version`` changed, the ops it added and deleted, and the
    materialised version moved to it, in one transaction — unless the
    document is materialised up to ``version`` already (another process
    wrote it first: nothing is written, False). The caller computed the
    version from what was stored below it; whoever moved the materialised
    version to ``version`` or past computed the same from the same (the
    voxels are a function of the log), and once a later version is written
    the rows below it must not change (a later undo reads them). A
    materialiser that resumes after a crash repeats the version it was on:
    nothing of it was committed."""
    async with conn.transaction():
        if await _lock_materialised(conn, key) >= version:
            return False
        if deleted:
            # Kept, marked: a later undo must know the op stood until then.
            await conn.execute(
                "UPDATE materialised_ops SET deleted_at = $4 WHERE annotation_id = $1 "
                "AND doc = $2 AND op = ANY($3::text[]) AND deleted_at IS NULL AND version < $4",
                key.annotation_id,
                key.doc,
                list(deleted),
                version,
            )
        if added:
            await conn.executemany(
                "INSERT INTO materialised_ops (annotation_id, doc, op, version, seq, layer, mag, "
                "b0x, b0y, b0z, b1x, b1y, b1z, bricks) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
                "ON CONFLICT (annotation_id, doc, op, version) DO UPDATE SET "
                "seq = EXCLUDED.seq, layer = EXCLUDED.layer, mag = EXCLUDED.mag, "
                "b0x = EXCLUDED.b0x, b0y = EXCLUDED.b0y, b0z = EXCLUDED.b0z, "
                "b1x = EXCLUDED.b1x, b1y = EXCLUDED.b1y, b1z = EXCLUDED.b1z, "
                "bricks = EXCLUDED.bricks, deleted_at = NULL",
                [
                    (
                        key.annotation_id,
                        key.doc,
                        o.op,
                        o.version,
                        o.seq,
                        o.layer,
                        o.mag,
                        *o.b0,
                        *o.b1,
                        None if o.bricks is None else [c for b in o.bricks for c in b],
                    )
                    for o in added
                ],
            )
        if rows:
            await conn.executemany(
                "INSERT INTO materialised_bricks "
                "(annotation_id, doc, layer, mag, bx, by, bz, version, data) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                "ON CONFLICT (annotation_id, doc, layer, mag, bx, by, bz, version) "
                "DO UPDATE SET data = EXCLUDED.data",
                [
                    (key.annotation_id, key.doc, r.layer, r.mag, *r.brick, version, r.data)
                    for r in rows
                ],
            )
        await conn.execute(
            "UPDATE materialised_versions SET version = $3 WHERE annotation_id = $1 AND doc = $2",
            key.annotation_id,
            key.doc,
            version,
        )
    return True


async def bricks_at(
    conn: asyncpg.Connection,
    key: RoomKey,
    layer: str,
    mag: str,
    bricks: Sequence[Brick],
    version: int | None = None,
) -> dict[Brick, bytes]:
    """Each brick's bytes as of ``version`` (default: the newest); a brick
    the document never wrote is absent (read its fallback)."""
    if not bricks:
        return {}
    rows = await conn.fetch(
        "SELECT DISTINCT ON (b.x, b.y, b.z) b.x, b.y, b.z, m.data "
        "FROM unnest($5::int[], $6::int[], $7::int[]) AS b(x, y, z) "
        "JOIN materialised_bricks m ON m.annotation_id = $1 AND m.doc = $2 AND m.layer = $3 "
        "AND m.mag = $4 AND m.bx = b.x AND m.by = b.y AND m.bz = b.z "
        "AND ($8::int IS NULL OR m.version <= $8) "
        "ORDER BY b.x, b.y, b.z, m.version DESC",
        key.annotation_id,
        key.doc,
        layer,
        mag,
        [b[0] for b in bricks],
        [b[1] for b in bricks],
        [b[2] for b in bricks],
        version,
    )
    return {(r["x"], r["y"], r["z"]): bytes(r["data"]) for r in rows}


async def version_rows(
    conn: asyncpg.Connection,
    key: RoomKey,
    version: int,
    places: Mapping[tuple[str, str], Collection[Brick]] | None,
) -> list[BrickRow]:
    """The bricks ``version`` wrote: among ``places`` (bricks by layer and
    mag: the reach of the ops it added), or every row of the version when
    None (an undo's region is not stored; the primary key's index is read
    whole for the document, its version column checked in the index)."""
    if places is None:
        rows = await conn.fetch(
            "SELECT layer, mag, bx, by, bz, data FROM materialised_bricks "
            "WHERE annotation_id = $1 AND doc = $2 AND version = $3",
            key.annotation_id,
            key.doc,
            version,
        )
    else:
        where = [(lm, b) for lm, bricks in places.items() for b in bricks]
        if not where:
            return []
        rows = await conn.fetch(
            "SELECT m.layer, m.mag, m.bx, m.by, m.bz, m.data "
            "FROM unnest($4::text[], $5::text[], $6::int[], $7::int[], $8::int[]) "
            "AS b(layer, mag, x, y, z) "
            "JOIN materialised_bricks m ON m.annotation_id = $1 AND m.doc = $2 "
            "AND m.layer = b.layer AND m.mag = b.mag AND m.bx = b.x AND m.by = b.y "
            "AND m.bz = b.z AND m.version = $3",
            key.annotation_id,
            key.doc,
            version,
            [lm[0] for lm, _ in where],
            [lm[1] for lm, _ in where],
            [b[0] for _, b in where],
            [b[1] for _, b in where],
            [b[2] for _, b in where],
        )
    return [
        BrickRow(r["layer"], r["mag"], (r["bx"], r["by"], r["bz"]), bytes(r["data"])) for r in rows
    ]


_OP_COLUMNS = "op, version, seq, layer, mag, b0x, b0y, b0z, b1x, b1y, b1z, bricks, deleted_at"


def _op_row(r: asyncpg.Record) -> OpRow:
    flat = r["bricks"]
    return OpRow(
        r["op"],
        r["version"],
        r["seq"],
        r["layer"],
        r["mag"],
        (r["b0x"], r["b0y"], r["b0z"]),
        (r["b1x"], r["b1y"], r["b1z"]),
        None if flat is None else tuple(zip(flat[0::3], flat[1::3], flat[2::3], strict=True)),
        r["deleted_at"],
    )


async def standing_ops(conn: asyncpg.Connection, key: RoomKey, ops: Sequence[str]) -> list[OpRow]:
    """The rows of the named ops that stand (not deleted), in applied order."""
    rows = await conn.fetch(
        f"SELECT {_OP_COLUMNS} FROM materialised_ops WHERE annotation_id = $1 AND doc = $2 "
        "AND op = ANY($3::text[]) AND deleted_at IS NULL ORDER BY version, seq, op",
        key.annotation_id,
        key.doc,
        list(ops),
    )
    return [_op_row(r) for r in rows]


async def ops_added_at(conn: asyncpg.Connection, key: RoomKey, version: int) -> list[OpRow]:
    """The rows of the ops ``version`` applied (standing or deleted since)."""
    rows = await conn.fetch(
        f"SELECT {_OP_COLUMNS} FROM materialised_ops WHERE annotation_id = $1 AND doc = $2 "
        "AND version = $3 ORDER BY seq, op",
        key.annotation_id,
        key.doc,
        version,
    )
    return [_op_row(r) for r in rows]


async def ops_after(conn: asyncpg.Connection, key: RoomKey, base: int) -> list[OpRow]:
    """What an undo computing bricks again from version ``base`` needs, in
    applied order: the ops added after ``base`` (standing or not), and the
    ops that stood at ``base`` and were deleted since."""
    rows = await conn.fetch(
        f"SELECT {_OP_COLUMNS} FROM materialised_ops WHERE annotation_id = $1 AND doc = $2 "
        "AND (version > $3 OR deleted_at > $3) ORDER BY version, seq, op",
        key.annotation_id,
        key.doc,
        base,
    )
    return [_op_row(r) for r in rows]


async def written_bricks(
    conn: asyncpg.Connection,
    key: RoomKey,
    layer: str,
    mag: str,
    version: int | None,
    limit: int,
) -> dict[Brick, bytes]:
    """Every brick of the layer at ``mag`` the document wrote, as of
    ``version`` (None: the newest); at most ``limit`` (more: ValueError)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (bx, by, bz) bx, by, bz, data FROM materialised_bricks "
        "WHERE annotation_id = $1 AND doc = $2 AND layer = $3 AND mag = $4 "
        "AND ($5::int IS NULL OR version <= $5) "
        "ORDER BY bx, by, bz, version DESC LIMIT $6",
        key.annotation_id,
        key.doc,
        layer,
        mag,
        version,
        limit + 1,
    )
    if len(rows) > limit:
        raise ValueError(f"more than {limit} bricks written")
    return {(r["bx"], r["by"], r["bz"]): bytes(r["data"]) for r in rows}


async def written_count(conn: asyncpg.Connection, key: RoomKey, layer: str) -> int:
    """How many bricks (of every mag) the document ever wrote in ``layer``."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM (SELECT DISTINCT mag, bx, by, bz FROM materialised_bricks "
        "WHERE annotation_id = $1 AND doc = $2 AND layer = $3) AS b",
        key.annotation_id,
        key.doc,
        layer,
    )
    return count


async def iter_written(
    conn: asyncpg.Connection, key: RoomKey, layer: str, version: int, batch: int = 256
) -> AsyncIterator[list[tuple[str, Brick, bytes]]]:
    """Every brick of ``layer`` the document wrote, as of ``version``, in
    batches of (mag, brick, bytes); run inside a transaction (a cursor)."""
    out: list[tuple[str, Brick, bytes]] = []
    async for r in conn.cursor(
        "SELECT DISTINCT ON (mag, bx, by, bz) mag, bx, by, bz, data FROM materialised_bricks "
        "WHERE annotation_id = $1 AND doc = $2 AND layer = $3 AND version <= $4 "
        "ORDER BY mag, bx, by, bz, version DESC",
        key.annotation_id,
        key.doc,
        layer,
        version,
        prefetch=batch,
    ):
        out.append((r["mag"], (r["bx"], r["by"], r["bz"]), bytes(r["data"])))
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out
