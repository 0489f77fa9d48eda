"""What every endpoint shares: the services, JSON in and out, the caller."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from collab.auth import Principal, hash_token, plausible
from collab.auth_cache import AuthCache
from collab.config import Settings
from collab.document.kind import Kinds
from collab.errors import BadRequest, CollabError, InvalidJSON, PayloadTooLarge
from collab.limits import Limits
from collab.metrics import Metrics
from collab.store import identity
from collab.store.database import Database
from collab.sync.registry import RoomRegistry
from collab.volume.service import Volumes
from collab.workers import Workers


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    pool: Database
    rooms: RoomRegistry
    metrics: Metrics
    workers: Workers
    volumes: Volumes
    limits: Limits
    #: The document kinds served (the registry opens rooms through the same).
    kinds: Kinds
    auth_cache: AuthCache


def services(conn: HTTPConnection) -> Services:
    svc: Services = conn.app.state.services
    return svc


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def error_response(exc: CollabError) -> JSON:
    response = JSON(exc.to_json(), status_code=exc.status)
    retry = exc.details.get("retry_after")
    if isinstance(retry, int | float):  # a rate limit (429) says when to come back
        response.headers["Retry-After"] = str(max(1, math.ceil(retry)))
    return response


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body over the {limit}-byte limit")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int = 1024 * 1024) -> dict[str, Any]:
    body = await read_body(request, limit)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidJSON("body must be a JSON object")
    return value


def bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
        return None
    return conn.query_params.get("token")


async def caller(conn: HTTPConnection) -> Principal:
    pool = services(conn).pool
    async with pool.acquire() as db:
        return await identity.authenticate(db, bearer(conn))


async def cached_caller(
    conn: HTTPConnection,
    dataset: str,
    check: Callable[[Any, Principal, str], Awaitable[None]],
) -> Principal:
    """The caller, once ``check(db, caller, dataset)`` let it read ``dataset``,
    answered from :class:`AuthCache` when it holds both answers (at most
    ``auth_cache_seconds`` old) and from one database connection otherwise.
    ``check`` raises when the caller may not read the dataset."""
    svc = services(conn)
    cache = svc.auth_cache
    token = bearer(conn)
    digest = hash_token(token) if token is not None and plausible(token) else None
    who = cache.principal(digest) if digest is not None else None
    if who is not None and cache.dataset_allowed(who, dataset):
        return who
    ticket = cache.ticket()
    async with svc.pool.acquire() as db:
        if who is None:
            now = dt.datetime.now(dt.UTC)
            who, expires = await identity.authenticate_until(db, token)
            assert digest is not None  # authenticate refused anything else
            left = None if expires is None else (expires - now).total_seconds()
            cache.remember_principal(digest, who, ticket, left)
        await check(db, who, dataset)
    cache.remember_dataset(who, dataset, ticket)
    return who


# -- field parsing ----------------------------------------------------------


def field_str(
    body: dict[str, Any], name: str, *, required: bool = True, max_len: int = 500
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidJSON(f"{name!r} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidJSON(f"{name!r} must be a non-empty string")
    if len(value) > max_len:
        raise InvalidJSON(f"{name!r} is longer than {max_len} characters")
    return storable(name, value)


def storable(name: str, value: Any, _depth: int = 0) -> Any:
    """``value`` unchanged if PostgreSQL can keep it (text and jsonb refuse
    the NUL character; jsonb nesting is bounded here); else 422 naming the
    field (and the path inside it)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidJSON(f"{name!r} must not contain the NUL character (\\u0000)")
    elif isinstance(value, dict):
        if _depth > MAX_JSON_DEPTH:
            raise InvalidJSON(f"{name!r} is nested deeper than {MAX_JSON_DEPTH} levels")
        for key, item in value.items():
            if "\x00" in key:
                raise InvalidJSON(f"{name!r} has a key with the NUL character (\\u0000)")
            storable(f"{name}.{key}", item, _depth + 1)
    elif isinstance(value, list):
        if _depth > MAX_JSON_DEPTH:
            raise InvalidJSON(f"{name!r} is nested deeper than {MAX_JSON_DEPTH} levels")
        for i, item in enumerate(value):
            storable(f"{name}[{i}]", item, _depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise InvalidJSON(f"{name!r} holds an integer beyond 64 bits")
    return value


#: Deepest JSON object or list kept from a request (settings, metadata).
MAX_JSON_DEPTH = 32


def field_int(
    body: dict[str, Any], name: str, *, required: bool = True, minimum: int = 0
) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidJSON(f"{name!r} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJSON(f"{name!r} must be an integer")
    if value < minimum or value > 2**62:
        raise InvalidJSON(f"{name!r} must be between {minimum} and 2^62")
    return value


def field_time(body: dict[str, Any], name: str) -> dt.datetime | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidJSON(f"{name!r} must be an ISO 8601 time")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidJSON(f"{name!r} must be an ISO 8601 time, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def path_int(conn: HTTPConnection, name: str) -> int:
    raw = conn.path_params.get(name, "")
    if not (str(raw).isascii() and str(raw).isdigit()) or len(str(raw)) > 18:
        raise BadRequest(f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


def query_int(
    conn: HTTPConnection, name: str, default: int | None, minimum: int = 0, maximum: int = 2**31 - 1
) -> int | None:
    raw = conn.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"?{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise BadRequest(f"?{name} must be between {minimum} and {maximum}")
    return value
