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


async def set_teams(db: asyncpg.Connection, name: str, teams: list[int]) -> None:
    await db.execute("DELETE FROM dataset_teams WHERE dataset = $1", name)
    await db.executemany(
        "INSERT INTO dataset_teams (dataset, team_id) VALUES ($1, $2)",
        [(name, t) for t in sorted(set(teams))],
    )


async def teams(db: asyncpg.Connection, name: str) -> list[int]:
    rows = await db.fetch(
        "SELECT team_id FROM dataset_teams WHERE dataset = $1 ORDER BY team_id", name
    )
    return [r["team_id"] for r in rows]


async def visible_to(db: asyncpg.Connection, name: str, user_id: int) -> bool:
    """Open datasets (no teams) are visible to every user; shared ones to their teams."""
    return bool(
        await db.fetchval(
            """SELECT NOT EXISTS (SELECT 1 FROM dataset_teams WHERE dataset = $1)
                   OR EXISTS (SELECT 1 FROM dataset_teams d JOIN team_members m
                              ON m.team_id = d.team_id
                              WHERE d.dataset = $1 AND m.user_id = $2)""",
            name,
            user_id,
        )
    )
