"""The store's boundary: the one place where asyncpg's errors meet the error tree.

Everything above ``collab/store/`` reaches PostgreSQL through
:class:`Database` (``async with db.acquire() as conn``). An asyncpg error
raised inside that block leaves it as a :class:`~collab.errors.CollabError`:

    lost connection, shutdown, too many clients,   -> Unavailable   (503)
    serialization failure, deadlock, timeout
    unique violation                               -> Conflict      (409)
    foreign key violation                          -> Unprocessable (422, ``unknown_reference``)
    data exception (class 22: a NUL in text or     -> Unprocessable (422, ``invalid_value``)
    jsonb, a number out of range, ...), other
    integrity violations (class 23)

Anything else (a syntax error, an undefined column) is a bug of ours and
stays a 500. The committer classifies with :func:`is_transient` itself: it
retries what is transient and isolates what is not (collab/store/committer.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from collab.errors import CollabError, Conflict, Unavailable, Unprocessable

#: SQLSTATE classes that mean "the database, not the request": connection
#: (08), insufficient resources (53), operator intervention (57: shutdown,
#: crash recovery, "starting up", statement cancelled), transaction rollback
#: (40: serialization failure, deadlock).
_TRANSIENT_CLASSES = ("08", "53", "57", "40")


def is_transient(exc: BaseException) -> bool:
    """True when retrying later may succeed (the database is away or busy)."""
    if isinstance(exc, (OSError, TimeoutError, asyncpg.InterfaceError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] in _TRANSIENT_CLASSES
    return False


class InvalidValue(Unprocessable):
    """PostgreSQL refused a value (a NUL character, a number out of range)."""

    code = "invalid_value"


class UnknownReference(Unprocessable):
    """A value names a row that does not exist (a foreign key)."""

    code = "unknown_reference"


def map_error(exc: BaseException) -> CollabError | None:
    """The error tree's member for an asyncpg error; None for our own bugs."""
    if isinstance(exc, CollabError):
        return exc
    if is_transient(exc):
        return Unavailable("the database is unavailable; try again")
    if not isinstance(exc, asyncpg.PostgresError):
        return None
    where = _where(exc)
    if isinstance(exc, asyncpg.UniqueViolationError):
        return Conflict(f"already exists{where}")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return UnknownReference(f"refers to something that does not exist{where}")
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith(("22", "23")):
        return InvalidValue(f"value refused by the database{where}: {first_line(exc)}")
    return None


def _where(exc: asyncpg.PostgresError) -> str:
    for attr in ("column_name", "constraint_name", "table_name"):
        value = getattr(exc, attr, None)
        if value:
            return f" ({attr.split('_')[0]} {value})"
    return ""


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (at most 200 characters), for logs and messages."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


class Database:
    """The connection pool, with asyncpg errors mapped on the way out."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(cls, url: str, *, max_size: int) -> Database:
        pool = await asyncpg.create_pool(url, min_size=2, max_size=max_size)
        assert pool is not None
        return cls(pool)

    @contextlib.asynccontextmanager
    async def acquire(self, *, timeout: float | None = None) -> AsyncIterator[Any]:  # noqa: ASYNC109
        try:
            conn_cm = self.pool.acquire(timeout=timeout)
            conn = await conn_cm.__aenter__()
        except Exception as exc:
            raise _mapped(exc) from exc
        try:
            yield conn
        except CollabError:
            await conn_cm.__aexit__(None, None, None)
            raise
        except BaseException as exc:
            await conn_cm.__aexit__(type(exc), exc, exc.__traceback__)
            mapped = map_error(exc) if isinstance(exc, Exception) else None
            if mapped is None:
                raise
            raise mapped from exc
        else:
            await conn_cm.__aexit__(None, None, None)

    async def close(self) -> None:
        await self.pool.close()


def _mapped(exc: Exception) -> BaseException:
    mapped = map_error(exc)
    return exc if mapped is None else mapped


#: What a block of ``Database.acquire`` yields, for type hints outside the store.
Connection = asyncpg.Connection
Record = asyncpg.Record
