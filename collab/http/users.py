"""REST: users and their tokens."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from collab.auth import ROLES
from collab.errors import Forbidden, InvalidJSON, NotFound
from collab.http.common import (
    JSON,
    caller,
    field_str,
    field_time,
    path_int,
    read_json,
    services,
    storable,
)
from collab.store import identity, work
from collab.work import access as work_access


def _teams_field(body: dict[str, object]) -> list[int] | None:
    teams = body.get("teams")
    if teams is None:
        return None
    if not isinstance(teams, list) or not all(
        isinstance(t, int) and not isinstance(t, bool) and t > 0 for t in teams
    ):
        raise InvalidJSON("'teams' must be a list of team ids")
    return sorted(set(teams))


def _experiences_field(body: dict[str, object]) -> dict[str, int] | None:
    levels = body.get("experiences")
    if levels is None:
        return None
    if not isinstance(levels, dict) or len(levels) > 100:
        raise InvalidJSON("'experiences' must be an object of domain: level")
    for domain, level in levels.items():
        if not isinstance(domain, str) or not domain or len(domain) > 100:
            raise InvalidJSON("experience domains are non-empty strings")
        storable("experiences", domain)
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 1_000_000:
            raise InvalidJSON(f"experience {domain!r} must be an integer level >= 0")
    return dict(levels)


async def create_user(request: Request) -> JSON:
    """Admins create anyone; managers create annotators and reviewers in their own teams."""
    who = await caller(request)
    body = await read_json(request)
    name = field_str(body, "name")
    email = field_str(body, "email", required=False, max_len=320)
    roles = body.get("roles", ["annotator"])
    if not isinstance(roles, list) or any(r not in ROLES for r in roles):
        raise InvalidJSON(f"'roles' must be a list of {', '.join(ROLES)}")
    teams = _teams_field(body) or []
    levels = _experiences_field(body) or {}
    async with services(request).pool.acquire() as db, db.transaction():
        actor = await work_access.actor(db, who)
        if not actor.is_admin:
            if not actor.is_manager:
                raise Forbidden("only admins and managers create users")
            if set(roles) - {"annotator", "reviewer"}:
                raise Forbidden("managers create annotators and reviewers only")
            if not teams or not set(teams) <= actor.managed:
                raise Forbidden("managers add users to teams they manage only")
        missing = await work.missing_teams(db, teams)
        if missing:
            raise NotFound(f"no team {missing[0]}")
        user_id = await identity.create_user(db, name or "", email, sorted(set(roles)))
        await work.set_membership(db, user_id, teams)
        await work.set_experiences(db, user_id, levels)
        _, token = await identity.create_token(db, user_id=user_id, label="first token")
        await work.audit(
            db,
            actor.user_id,
            "user",
            user_id,
            "create",
            details={"roles": sorted(set(roles)), "teams": teams},
        )
    return JSON({"id": user_id, "token": token}, status_code=201)


async def update_user(request: Request) -> JSON:
    """Teams, experiences (admins and managers of all the user's teams) and roles (admins)."""
    who = await caller(request)
    user_id = path_int(request, "user_id")
    body = await read_json(request)
    teams = _teams_field(body)
    levels = _experiences_field(body)
    roles = body.get("roles")
    if roles is not None and (not isinstance(roles, list) or any(r not in ROLES for r in roles)):
        raise InvalidJSON(f"'roles' must be a list of {', '.join(ROLES)}")
    async with services(request).pool.acquire() as db, db.transaction():
        actor = await work_access.actor(db, who)
        await identity.get_user(db, user_id)
        current = set(await work.user_teams(db, user_id))
        if not actor.is_admin:
            if roles is not None:
                raise Forbidden("only admins change roles")
            if not actor.is_manager or not current or not current <= actor.managed:
                raise Forbidden("managers change users of their own teams only")
            if teams is not None and not set(teams) <= actor.managed:
                raise Forbidden("managers add users to teams they manage only")
        if teams is not None:
            missing = await work.missing_teams(db, teams)
            if missing:
                raise NotFound(f"no team {missing[0]}")
            await work.set_membership(db, user_id, teams)
        if levels is not None:
            await work.set_experiences(db, user_id, levels)
        if roles is not None:
            await db.execute(
                "UPDATE users SET roles = $2 WHERE id = $1", user_id, sorted(set(roles))
            )
        await work.audit(
            db,
            actor.user_id,
            "user",
            user_id,
            "update",
            details={k: body[k] for k in ("teams", "experiences", "roles") if k in body},
        )
        user = await _user_json(db, user_id)
    services(request).auth_cache.invalidate()  # roles and teams decide dataset reads
    return JSON(user)


async def _user_json(db: Any, user_id: int) -> dict[str, Any]:
    user = await identity.get_user(db, user_id)
    user["teams"] = await work.user_teams(db, user_id)
    user["experiences"] = await work.experiences(db, user_id)
    return user


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
        return JSON(await _user_json(db, who.user_id or 0))


async def get_user(request: Request) -> JSON:
    who = await caller(request)
    user_id = path_int(request, "user_id")
    async with services(request).pool.acquire() as db:
        if not who.is_admin and who.user_id != user_id:
            actor = await work_access.actor(db, who)
            if not (set(await work.user_teams(db, user_id)) & actor.managed):
                raise Forbidden("you may read only your own user or your teams' users")
        return JSON(await _user_json(db, user_id))


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
    services(request).auth_cache.invalidate()  # committed: the next request sees it
    return JSON({"id": token_id, "revoked": True})


routes = [
    Route("/api/users", create_user, methods=["POST"]),
    Route("/api/users/me", me, methods=["GET"]),
    Route("/api/users/{user_id}", get_user, methods=["GET"]),
    Route("/api/users/{user_id}", update_user, methods=["PATCH"]),
    Route("/api/users/{user_id}/tokens", create_token, methods=["POST"]),
    Route("/api/tokens/{token_id}", revoke_token, methods=["DELETE"]),
]
