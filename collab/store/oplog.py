"""The operation log and snapshots: reads and the batched append."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from collab.document.log import RoomKey, UpdateRecord


@dataclass(frozen=True, slots=True)
class StoredState:
    snapshot: bytes | None
    snapshot_version: int
    updates: list[bytes]
    head: int

    def parts(self) -> list[tuple[int, bytes]]:
        """(version, bytes), oldest first: the snapshot, then each update since."""
        parts = [] if self.snapshot is None else [(self.snapshot_version, self.snapshot)]
        parts.extend((self.snapshot_version + 1 + i, u) for i, u in enumerate(self.updates))
        return parts


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    time: dt.datetime
    author: int | None
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "time": self.time.isoformat(),
            "author": self.author,
            "summary": self.summary,
        }


async def load(conn: asyncpg.Connection, key: RoomKey, upto: int | None = None) -> StoredState:
    """The newest snapshot at or before ``upto`` (default: head) and the updates after it."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        return await load_in(conn, key, upto)


async def load_in(conn: asyncpg.Connection, key: RoomKey, upto: int | None = None) -> StoredState:
    """:func:`load` inside the caller's transaction (its snapshot of the data)."""
    snap = await conn.fetchrow(
        """SELECT version, data FROM doc_snapshots
               WHERE annotation_id = $1 AND doc = $2 AND ($3::int IS NULL OR version <= $3)
               ORDER BY version DESC LIMIT 1""",
        key.annotation_id,
        key.doc,
        upto,
    )
    base = snap["version"] if snap else 0
    rows = await conn.fetch(
        """SELECT version, data FROM doc_updates
               WHERE annotation_id = $1 AND doc = $2 AND version > $3
                 AND ($4::int IS NULL OR version <= $4)
               ORDER BY version""",
        key.annotation_id,
        key.doc,
        base,
        upto,
    )
    head = rows[-1]["version"] if rows else base
    return StoredState(
        snapshot=bytes(snap["data"]) if snap else None,
        snapshot_version=base,
        updates=[bytes(r["data"]) for r in rows],
        head=head,
    )


async def stored_docs(conn: asyncpg.Connection, annotation_id: int) -> list[str]:
    """The documents (kind names) with versions stored for an annotation.

    A skip scan over the primary key (one index probe per document, not one
    row per version): a base annotation may have a long history."""
    rows = await conn.fetch(
        """WITH RECURSIVE docs(doc) AS (
               (SELECT doc FROM doc_updates WHERE annotation_id = $1 ORDER BY doc LIMIT 1)
               UNION ALL
               SELECT (SELECT u.doc FROM doc_updates u
                        WHERE u.annotation_id = $1 AND u.doc > docs.doc
                        ORDER BY u.doc LIMIT 1)
               FROM docs WHERE docs.doc IS NOT NULL
           )
           SELECT doc FROM docs WHERE doc IS NOT NULL""",
        annotation_id,
    )
    return [row["doc"] for row in rows]


async def head(conn: asyncpg.Connection, key: RoomKey) -> int:
    value = await conn.fetchval(
        "SELECT max(version) FROM doc_updates WHERE annotation_id = $1 AND doc = $2",
        key.annotation_id,
        key.doc,
    )
    return int(value or 0)


async def append(conn: asyncpg.Connection, records: Sequence[UpdateRecord]) -> None:
    """Write a batch of records in the caller's transaction."""
    await conn.copy_records_to_table(
        "doc_updates",
        records=[
            (
                r.key.annotation_id,
                r.key.doc,
                r.version,
                r.author_id,
                dt.datetime.fromtimestamp(r.created_at, dt.UTC),
                r.summary.decode(),
                r.data,
            )
            for r in records
        ],
        columns=["annotation_id", "doc", "version", "author_id", "created_at", "summary", "data"],
    )


async def stored_versions(
    conn: asyncpg.Connection, records: Sequence[UpdateRecord]
) -> set[tuple[int, str, int]]:
    """Which of ``records`` are already in the log, as (annotation, doc, version)."""
    rows = await conn.fetch(
        """SELECT u.annotation_id, u.doc, u.version FROM doc_updates u
           JOIN unnest($1::bigint[], $2::text[], $3::int[]) AS r(a, d, v)
             ON u.annotation_id = r.a AND u.doc = r.d AND u.version = r.v""",
        [r.key.annotation_id for r in records],
        [r.key.doc for r in records],
        [r.version for r in records],
    )
    return {(row[0], row[1], row[2]) for row in rows}


async def store_snapshot(conn: asyncpg.Connection, key: RoomKey, version: int, data: bytes) -> None:
    await conn.execute(
        """INSERT INTO doc_snapshots (annotation_id, doc, version, data) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING""",
        key.annotation_id,
        key.doc,
        version,
        data,
    )


async def versions(
    conn: asyncpg.Connection, key: RoomKey, before: int | None, limit: int
) -> list[VersionInfo]:
    rows = await conn.fetch(
        """SELECT version, created_at, author_id, summary FROM doc_updates
           WHERE annotation_id = $1 AND doc = $2 AND ($3::int IS NULL OR version < $3)
           ORDER BY version DESC LIMIT $4""",
        key.annotation_id,
        key.doc,
        before,
        limit,
    )
    return [
        VersionInfo(r["version"], r["created_at"], r["author_id"], orjson.loads(r["summary"]))
        for r in rows
    ]


async def iter_updates(
    conn: asyncpg.Connection, key: RoomKey, first: int, last: int | None
) -> AsyncIterator[tuple[VersionInfo, bytes]]:
    """Updates ``first..last`` in order, read with a cursor (inside a transaction)."""
    async for r in conn.cursor(
        """SELECT version, created_at, author_id, summary, data FROM doc_updates
           WHERE annotation_id = $1 AND doc = $2 AND version >= $3
             AND ($4::int IS NULL OR version <= $4)
           ORDER BY version""",
        key.annotation_id,
        key.doc,
        first,
        last,
        prefetch=200,
    ):
        info = VersionInfo(
            r["version"], r["created_at"], r["author_id"], orjson.loads(r["summary"])
        )
        yield info, bytes(r["data"])
