"""The operation log against a real PostgreSQL (a migrated template clone)."""

from __future__ import annotations

import asyncpg

from collab.document.log import RoomKey, UpdateRecord
from collab.store import identity, oplog


async def test_stored_docs_lists_each_document_with_versions_once(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        owner = await identity.create_user(conn, "owner", None, [])
        first = await identity.create_annotation(conn, "first", None, owner)
        other = await identity.create_annotation(conn, "other", None, owner)
        empty = await identity.create_annotation(conn, "empty", None, owner)
        records = [
            UpdateRecord(RoomKey(first, doc), version, None, 0.0, b"{}", b"\x00\x00")
            for doc in ("skeleton", "notes", "segmentation")
            for version in (1, 2, 3)
        ]
        records.append(UpdateRecord(RoomKey(other, "zzz"), 1, None, 0.0, b"{}", b"\x00\x00"))
        await oplog.append(conn, records)
        assert await oplog.stored_docs(conn, first) == ["notes", "segmentation", "skeleton"]
        assert await oplog.stored_docs(conn, other) == ["zzz"]
        assert await oplog.stored_docs(conn, empty) == []
    finally:
        await conn.close()
