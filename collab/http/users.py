"""REST: users and their tokens."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from collab.auth import ROLES
from collab.errors import Forbidden, InvalidJSON
from collab.http.common import (
    JSON,
    caller,
    field_str,
    field_time,
    path_int,
    read_json,
    services,
)
from collab.store import identity


async def create_user(request: Request) -> JSON:
    who = await caller(request)
    if not who.is_admin:
        raise Forbidden("only admins create users")
    body = await read_json(request)
    name = field_str(body, "name")
    email = field_str(body, "email", required=False, max_len=320)
    roles = body.get("roles", ["annotator"])
    if not isinstance(roles, list) or any(r not in ROLES for r in roles):
        raise InvalidJSON(f"'roles' must be a list of {', '.join(ROLES)}")
    async with services(request).pool.acquire() as db, db.transaction():
        user_id = await identity.create_user(db, name or "", email, sorted(set(roles)))
        _, token = await identity.create_token(db, user_id=user_id, label="first token")
    return JSON({"id": user_id, "token": token}, status_code=201)


async def me(request: Request) -> JSON:
    who = await caller(request)
    if who.is_link:
        return JSON(
            {
                "link": True,
                "annotation": who.link_annotation,
                "access": who.link_access.name.lower(),
            }
        )
    async with services(request).pool.acquire() as db:
        return JSON(await identity.get_user(db, who.user_id or 0))


async def get_user(request: Request) -> JSON:
    who = await caller(request)
    user_id = path_int(request, "user_id")
    if not who.is_admin and who.user_id != user_id:
        raise Forbidden("you may read only your own user")
    async with services(request).pool.acquire() as db:
        return JSON(await identity.get_user(db, user_id))


async def create_token(request: Request) -> JSON:
    who = await caller(request)
    user_id = path_int(request, "user_id")
    if who.is_link or (not who.is_admin and who.user_id != user_id):
        raise Forbidden("you may create tokens only for yourself")
    body = await read_json(request)
    label = field_str(body, "label", required=False)
    expires = field_time(body, "expires")
    async with services(request).pool.acquire() as db:
        await identity.get_user(db, user_id)
        token_id, token = await identity.create_token(
            db, user_id=user_id, expires=expires, label=label
        )
    return JSON({"id": token_id, "token": token}, status_code=201)


async def revoke_token(request: Request) -> JSON:
    who = await caller(request)
    token_id = path_int(request, "token_id")
    async with services(request).pool.acquire() as db:
        owner, annotation = await identity.token_owner(db, token_id)
        allowed = who.is_admin or (owner is not None and owner == who.user_id and not who.is_link)
        if not allowed and annotation is not None and not who.is_link:
            access = await identity.access_to(db, who, annotation)
            allowed = access.name == "OWNER"
        if not allowed:
            raise Forbidden("you may revoke only your own tokens")
        await identity.revoke_token(db, token_id)
    return JSON({"id": token_id, "revoked": True})


routes = [
    Route("/api/users", create_user, methods=["POST"]),
    Route("/api/users/me", me, methods=["GET"]),
    Route("/api/users/{user_id}", get_user, methods=["GET"]),
    Route("/api/users/{user_id}/tokens", create_token, methods=["POST"]),
    Route("/api/tokens/{token_id}", revoke_token, methods=["DELETE"]),
]
