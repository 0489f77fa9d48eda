"""Rows of registered datasets."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from collab.errors import Conflict


async def insert(
    db: asyncpg.Connection,
    name: str,
    url: str,
    layout: str,
    metadata: dict[str, Any],
    created_by: int | None,
) -> None:
    try:
        await db.execute(
            "INSERT INTO datasets (name, url, layout, metadata, created_by) "
            "VALUES ($1, $2, $3, $4::jsonb, $5)",
            name,
            url,
            layout,
            orjson.dumps(metadata).decode(),
            created_by,
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a dataset named {name!r} is already registered") from None


async def get(db: asyncpg.Connection, name: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT name, url, layout, metadata FROM datasets WHERE name = $1", name
    )
    return row


async def names(db: asyncpg.Connection) -> list[str]:
    return [r["name"] for r in await db.fetch("SELECT name FROM datasets ORDER BY name")]


async def exists(db: asyncpg.Connection, name: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM datasets WHERE name = $1", name))
