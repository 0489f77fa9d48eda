"""Users, tokens, annotations and grants."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from collab.auth import (
    ROLE_ACCESS,
    Access,
    Principal,
    hash_token,
    new_token,
    plausible,
    same_hash,
)
from collab.errors import Conflict, NotFound, Unauthenticated


async def create_user(
    conn: asyncpg.Connection, name: str, email: str | None, roles: list[str]
) -> int:
    try:
        return int(
            await conn.fetchval(
                "INSERT INTO users (name, email, roles) VALUES ($1, $2, $3) RETURNING id",
                name,
                email,
                roles,
            )
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(f"a user with email {email!r} exists") from None


async def get_user(conn: asyncpg.Connection, user_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT id, name, email, roles, created_at FROM users WHERE id = $1", user_id
    )
    if row is None:
        raise NotFound(f"no user {user_id}")
    return {
        "id": row["id"],
        "name": row["name"],
        "email": row["email"],
        "roles": list(row["roles"]),
        "created": row["created_at"].isoformat(),
    }


async def create_token(
    conn: asyncpg.Connection,
    *,
    user_id: int | None,
    annotation_id: int | None = None,
    access: str | None = None,
    expires: dt.datetime | None = None,
    label: str | None = None,
    token: str | None = None,
) -> tuple[int, str]:
    token = token or new_token()
    token_id = await conn.fetchval(
        """INSERT INTO tokens (hash, user_id, annotation_id, access, expires_at, label)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING id""",
        hash_token(token),
        user_id,
        annotation_id,
        access,
        expires,
        label,
    )
    return int(token_id), token


async def revoke_token(conn: asyncpg.Connection, token_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "UPDATE tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 "
        "RETURNING id, user_id, annotation_id",
        token_id,
    )
    if row is None:
        raise NotFound(f"no token {token_id}")
    return dict(row)


async def revoke_labelled(conn: asyncpg.Connection, user_id: int, label: str) -> int:
    """Revoke a user's live tokens carrying ``label``; returns how many."""
    done = await conn.execute(
        "UPDATE tokens SET revoked_at = now() "
        "WHERE user_id = $1 AND label = $2 AND revoked_at IS NULL",
        user_id,
        label,
    )
    return int(done.split()[-1])


async def token_owner(conn: asyncpg.Connection, token_id: int) -> tuple[int | None, int | None]:
    row = await conn.fetchrow("SELECT user_id, annotation_id FROM tokens WHERE id = $1", token_id)
    if row is None:
        raise NotFound(f"no token {token_id}")
    return row["user_id"], row["annotation_id"]


async def authenticate(conn: asyncpg.Connection, token: str | None) -> Principal:
    """The principal a bearer token stands for; raises Unauthenticated."""
    principal, _ = await authenticate_until(conn, token)
    return principal


async def authenticate_until(
    conn: asyncpg.Connection, token: str | None
) -> tuple[Principal, dt.datetime | None]:
    """As :func:`authenticate`, with the token's expiry (None: never)."""
    if not plausible(token):
        raise Unauthenticated("missing or malformed token")
    assert token is not None
    digest = hash_token(token)
    row = await conn.fetchrow(
        """SELECT t.id, t.hash, t.user_id, t.annotation_id, t.access, t.expires_at,
                  t.revoked_at, u.roles, u.disabled_at
           FROM tokens t LEFT JOIN users u ON u.id = t.user_id
           WHERE t.hash = $1""",
        digest,
    )
    if row is None or not same_hash(bytes(row["hash"]), digest):
        raise Unauthenticated("unknown token")
    if row["revoked_at"] is not None:
        raise Unauthenticated("token revoked")
    if row["expires_at"] is not None and row["expires_at"] <= dt.datetime.now(dt.UTC):
        raise Unauthenticated("token expired")
    if row["disabled_at"] is not None:
        raise Unauthenticated("user disabled")
    if row["annotation_id"] is not None:
        principal = Principal(
            token_id=row["id"],
            user_id=None,
            roles=frozenset(),
            link_annotation=row["annotation_id"],
            link_access=Access.WRITE if row["access"] == "write" else Access.READ,
        )
    else:
        principal = Principal(
            token_id=row["id"], user_id=row["user_id"], roles=frozenset(row["roles"] or ())
        )
    return principal, row["expires_at"]


async def create_annotation(
    conn: asyncpg.Connection, name: str, dataset: str | None, owner_id: int
) -> int:
    async with conn.transaction():
        annotation_id = int(
            await conn.fetchval(
                "INSERT INTO annotations (name, dataset, owner_id) VALUES ($1, $2, $3) RETURNING id",
                name,
                dataset,
                owner_id,
            )
        )
        await conn.execute(
            "INSERT INTO annotation_grants (annotation_id, user_id, role, granted_by) "
            "VALUES ($1, $2, 'owner', $2)",
            annotation_id,
            owner_id,
        )
    return annotation_id


async def get_annotation(conn: asyncpg.Connection, annotation_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        "SELECT id, name, dataset, owner_id, created_at FROM annotations WHERE id = $1",
        annotation_id,
    )
    if row is None:
        raise NotFound(f"no annotation {annotation_id}")
    return {
        "id": row["id"],
        "name": row["name"],
        "dataset": row["dataset"],
        "owner": row["owner_id"],
        "created": row["created_at"].isoformat(),
    }


async def access_to(conn: asyncpg.Connection, principal: Principal, annotation_id: int) -> Access:
    """The caller's access to an annotation; raises NotFound when it does not exist."""
    exists = await conn.fetchval("SELECT 1 FROM annotations WHERE id = $1", annotation_id)
    if not exists:
        raise NotFound(f"no annotation {annotation_id}")
    if principal.is_link:
        return principal.link_access if principal.link_annotation == annotation_id else Access.NONE
    if principal.is_admin:
        return Access.OWNER
    role = await conn.fetchval(
        "SELECT role FROM annotation_grants WHERE annotation_id = $1 AND user_id = $2",
        annotation_id,
        principal.user_id,
    )
    access = ROLE_ACCESS.get(role, Access.NONE)
    if access == Access.NONE and principal.roles & {"manager", "reviewer"}:
        # A task's annotation: the team's managers and reviewers read it.
        member = await conn.fetchval(
            "SELECT 1 FROM task_instances i JOIN team_members m ON m.team_id = i.team_id "
            "WHERE i.annotation_id = $1 AND m.user_id = $2",
            annotation_id,
            principal.user_id,
        )
        if member:
            access = Access.READ
    return access


async def grant(
    conn: asyncpg.Connection, annotation_id: int, user_id: int, role: str, granted_by: int | None
) -> None:
    exists = await conn.fetchval("SELECT 1 FROM users WHERE id = $1", user_id)
    if not exists:
        raise NotFound(f"no user {user_id}")
    await conn.execute(
        """INSERT INTO annotation_grants (annotation_id, user_id, role, granted_by)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (annotation_id, user_id) DO UPDATE SET role = excluded.role""",
        annotation_id,
        user_id,
        role,
        granted_by,
    )


async def revoke_grant(conn: asyncpg.Connection, annotation_id: int, user_id: int) -> None:
    done = await conn.execute(
        "DELETE FROM annotation_grants WHERE annotation_id = $1 AND user_id = $2 AND role <> 'owner'",
        annotation_id,
        user_id,
    )
    if done.endswith(" 0"):
        raise NotFound(f"user {user_id} has no removable grant on annotation {annotation_id}")


async def list_annotations(
    conn: asyncpg.Connection, principal: Principal, limit: int, before: int | None
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT a.id, a.name, a.dataset, a.owner_id, a.created_at,
                  coalesce(g.role, CASE WHEN $3 THEN 'owner' END) AS role
           FROM annotations a
           LEFT JOIN annotation_grants g ON g.annotation_id = a.id AND g.user_id = $1
           WHERE ($3 OR g.role IS NOT NULL) AND ($2::bigint IS NULL OR a.id < $2)
           ORDER BY a.id DESC LIMIT $4""",
        principal.user_id,
        before,
        principal.is_admin,
        limit,
    )
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "dataset": r["dataset"],
            "owner": r["owner_id"],
            "created": r["created_at"].isoformat(),
            "role": r["role"],
        }
        for r in rows
    ]


async def ensure_admin(conn: asyncpg.Connection, token: str | None) -> str | None:
    """Create the bootstrap admin once. Returns a newly generated token to print, else None."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(7301)")
        admin_id = await conn.fetchval(
            "SELECT (value->>'user_id')::bigint FROM server_settings WHERE key = 'admin'"
        )
        if admin_id is None:
            admin_id = await create_user(conn, "admin", None, ["admin"])
            await conn.execute(
                "INSERT INTO server_settings (key, value) VALUES ('admin', $1)",
                f'{{"user_id": {admin_id}}}',
            )
        if token is not None:
            exists = await conn.fetchval("SELECT 1 FROM tokens WHERE hash = $1", hash_token(token))
            if not exists:
                await create_token(conn, user_id=admin_id, label="COLLAB_ADMIN_TOKEN", token=token)
            return None
        has_any = await conn.fetchval(
            "SELECT 1 FROM tokens WHERE user_id = $1 AND revoked_at IS NULL", admin_id
        )
        if has_any:
            return None
        _, generated = await create_token(conn, user_id=admin_id, label="generated at first start")
        return generated
