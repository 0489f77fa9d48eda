"""Volume data uploaded with a WEBKNOSSOS zip, kept immutably (migration
``0008_volume_uploads.sql``): one upload per volume layer of the zip, its
bricks as zstd-compressed raw bytes (x fastest), the bytes
``materialised_bricks`` holds. The segmentation document's ``import`` op
names an upload; materialising it copies the upload's bricks into the
layer's (collab/segmentation/imports.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass

import asyncpg

Brick = tuple[int, int, int]
#: (mag, brick, zstd bytes)
UploadBrick = tuple[str, Brick, bytes]


@dataclass(frozen=True, slots=True)
class Upload:
    id: int
    annotation_id: int
    #: Who uploaded it (None: the user is gone).
    author_id: int | None
    name: str
    format: str | None
    dtype: str
    mags: list[str]
    bricks: int


async def create(
    conn: asyncpg.Connection,
    annotation_id: int,
    author: int | None,
    name: str,
    fmt: str | None,
    dtype: str,
    mags: list[str],
) -> int:
    """A new upload (its bricks follow with :func:`add_bricks`), pending
    until a version names it (:func:`sweep`); its id."""
    upload_id: int = await conn.fetchval(
        "INSERT INTO volume_uploads "
        "(annotation_id, author_id, name, format, dtype, mags, bricks, pending) "
        "VALUES ($1, $2, $3, $4, $5, $6, 0, true) RETURNING id",
        annotation_id,
        author,
        name,
        fmt,
        dtype,
        mags,
    )
    return upload_id


async def add_bricks(
    conn: asyncpg.Connection, upload_id: int, bricks: AsyncIterable[list[UploadBrick]]
) -> int:
    """Store the upload's bricks, batch by batch (COPY); return how many."""
    count = 0
    async for batch in bricks:
        if not batch:
            continue
        await conn.copy_records_to_table(
            "volume_upload_bricks",
            records=[(upload_id, mag, b[0], b[1], b[2], data) for mag, b, data in batch],
            columns=["upload_id", "mag", "bx", "by", "bz", "data"],
        )
        count += len(batch)
    await conn.execute("UPDATE volume_uploads SET bricks = $2 WHERE id = $1", upload_id, count)
    return count


async def delete(conn: asyncpg.Connection, upload_ids: Iterable[int]) -> None:
    """Remove uploads no document names (an import refused after storing them)."""
    await conn.execute("DELETE FROM volume_uploads WHERE id = ANY($1::bigint[])", list(upload_ids))


#: A pending upload's annotation has a segmentation version naming it (the
#: import's summary: ``{"import": {"uploads": [ids]}}``).
_NAMED = (
    "EXISTS (SELECT 1 FROM doc_updates d WHERE d.annotation_id = u.annotation_id "
    "AND d.doc = 'segmentation' AND d.summary->'import'->'uploads' @> to_jsonb(u.id))"
)


async def sweep(conn: asyncpg.Connection, older_than_s: float) -> tuple[int, int]:
    """Settle uploads pending for more than ``older_than_s`` seconds: those
    a version of their annotation's segmentation names are kept (pending no
    more), the others removed (their import failed, or the server died
    before the version was made: nothing can name them now). Returns how
    many were kept and removed."""
    async with conn.transaction():
        stale = "u.pending AND u.created_at < now() - make_interval(secs => $1)"
        kept = await conn.fetch(
            f"UPDATE volume_uploads u SET pending = false WHERE {stale} AND {_NAMED} RETURNING id",
            older_than_s,
        )
        removed = await conn.fetch(
            f"DELETE FROM volume_uploads u WHERE {stale} AND NOT {_NAMED} RETURNING id",
            older_than_s,
        )
    return len(kept), len(removed)


#: Copies of copies followed back to the upload's annotation (a task's
#: base may itself be a task's annotation).
MAX_COPY_DEPTH = 16


async def get(conn: asyncpg.Connection, annotation_id: int, upload_id: int) -> Upload | None:
    """The upload, if the annotation may use it: its own, or one of an
    annotation it was copied from (a task's base annotation, copied by
    collab/work/flow.py into version 1… of the task's annotation, each
    version's summary naming it in ``copiedFrom``), uploaded before that
    copy was made; copies of copies too. Uploads are immutable, so a copy
    shares its base's instead of duplicating their bricks."""
    row = await conn.fetchrow(
        """
        WITH RECURSIVE sources (annotation_id, until, depth) AS (
            SELECT $2::bigint, 'infinity'::timestamptz, 0
            UNION ALL
            SELECT (d.summary->>'copiedFrom')::bigint, LEAST(s.until, d.created_at), s.depth + 1
            FROM sources s
            JOIN doc_updates d ON d.annotation_id = s.annotation_id
                AND d.doc = 'segmentation' AND d.version = 1
            WHERE jsonb_typeof(d.summary->'copiedFrom') = 'number' AND s.depth < $3
        )
        SELECT u.id, u.annotation_id, u.author_id, u.name, u.format, u.dtype, u.mags, u.bricks
        FROM volume_uploads u
        JOIN sources s ON s.annotation_id = u.annotation_id AND u.created_at <= s.until
        WHERE u.id = $1
        LIMIT 1
        """,
        upload_id,
        annotation_id,
        MAX_COPY_DEPTH,
    )
    if row is None:
        return None
    return Upload(
        row["id"],
        row["annotation_id"],
        row["author_id"],
        row["name"],
        row["format"],
        row["dtype"],
        list(row["mags"]),
        row["bricks"],
    )


async def brick_places(conn: asyncpg.Connection, upload_id: int) -> dict[str, list[Brick]]:
    """The upload's bricks (coordinates only), by mag."""
    rows = await conn.fetch(
        "SELECT mag, bx, by, bz FROM volume_upload_bricks WHERE upload_id = $1 "
        "ORDER BY mag, bz, by, bx",
        upload_id,
    )
    out: dict[str, list[Brick]] = {}
    for r in rows:
        out.setdefault(r["mag"], []).append((r["bx"], r["by"], r["bz"]))
    return out


async def bricks_of(conn: asyncpg.Connection, upload_id: int, mag: str) -> dict[Brick, bytes]:
    """The upload's bricks at ``mag``, with their bytes."""
    rows = await conn.fetch(
        "SELECT bx, by, bz, data FROM volume_upload_bricks WHERE upload_id = $1 AND mag = $2",
        upload_id,
        mag,
    )
    return {(r["bx"], r["by"], r["bz"]): bytes(r["data"]) for r in rows}
