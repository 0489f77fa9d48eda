"""The proofreading ops the server sequenced, per annotation (migration
0011): what the editable mapping applies (collab/proofreading/service.py)."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson


async def record(
    conn: asyncpg.Connection, annotation_id: int, seq: int, op: dict[str, Any]
) -> None:
    """Keep the op the server is about to write as ``pr-<seq>``."""
    await conn.execute(
        "INSERT INTO proofreading_ops (annotation_id, seq, op) VALUES ($1, $2, $3::jsonb)",
        annotation_id,
        seq,
        orjson.dumps(op).decode(),
    )


async def recorded(conn: asyncpg.Connection, annotation_id: int) -> dict[int, dict[str, Any]]:
    """Every op the server sequenced for the annotation, by seq."""
    rows = await conn.fetch(
        "SELECT seq, op::text AS op FROM proofreading_ops WHERE annotation_id = $1", annotation_id
    )
    return {int(r["seq"]): orjson.loads(r["op"]) for r in rows}


async def copy(conn: asyncpg.Connection, source: int, target: int) -> None:
    """A copy of an annotation's documents (a task's base) means the same ops."""
    await conn.execute(
        "INSERT INTO proofreading_ops (annotation_id, seq, op, created_at) "
        "SELECT $2, seq, op, created_at FROM proofreading_ops WHERE annotation_id = $1 "
        "ON CONFLICT DO NOTHING",
        source,
        target,
    )
