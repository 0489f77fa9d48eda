"""Counters per annotation, taken in ranges that never overlap.

One statement per take: concurrent takers (on any instance) are serialised
by the row lock of the upsert, so two ranges never share a value.
"""

from __future__ import annotations

import asyncpg


async def take(
    db: asyncpg.Connection, annotation_id: int, name: str, floor: int, count: int
) -> int:
    """Hand out ``count`` values of counter ``name``: the first of them. The
    range starts at ``floor`` or at the counter's next value, whichever is
    higher (the floor says what is known to be taken elsewhere)."""
    first: int = await db.fetchval(
        "INSERT INTO annotation_counters AS c (annotation_id, name, next_value) "
        "VALUES ($1, $2, $3::bigint + $4) "
        "ON CONFLICT (annotation_id, name) DO UPDATE "
        "SET next_value = GREATEST(c.next_value, $3::bigint) + $4 "
        "RETURNING next_value - $4",
        annotation_id,
        name,
        floor,
        count,
    )
    return first
