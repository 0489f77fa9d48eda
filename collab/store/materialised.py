"""Bricks a document materialises beside its log (a segmentation's voxels),
versioned like the log: what a kind's materialiser writes and readers read.

Generic: a row is (annotation, doc, layer, mag, brick, version, bytes); the
kind decides what the bytes are. The bricks of one version are written in
one transaction with the document's materialised version.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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


async def write_version(
    conn: asyncpg.Connection,
    key: RoomKey,
    version: int,
    rows: Sequence[BrickRow],
    added: Sequence[OpRow] = (),
    deleted: Sequence[str] = (),
) -> None:
    """The bricks ``version`` changed, the ops it added and deleted, and the
    materialised version moved to it, in one transaction. Writing a version
    again replaces its rows (a materialiser that resumes after a crash
    repeats the version it was on)."""
    async with conn.transaction():
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
            "INSERT INTO materialised_versions (annotation_id, doc, version) VALUES ($1, $2, $3) "
            "ON CONFLICT (annotation_id, doc) DO UPDATE "
            "SET version = GREATEST(materialised_versions.version, EXCLUDED.version)",
            key.annotation_id,
            key.doc,
            version,
        )


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
