"""Who a token stands for, and which datasets it reads, remembered for a moment.

A client fetching bricks over HTTP sends one GET per brick. Looking its
token up in PostgreSQL and checking the dataset's teams cost 3-5 round trips
per brick, most of the ~1.2 ms a brick took (docs/performance.md). The brick
endpoint asks this cache first; every request is still authorised on the
server, from an answer PostgreSQL gave at most ``ttl`` seconds ago.

Bounds on staleness (``COLLAB_AUTH_CACHE_SECONDS``, docs/config.md):

* **On the instance that makes a change** (a token revoked, a user's roles or
  teams changed, a dataset's teams set) the change counts from the next
  request: the endpoint calls :meth:`AuthCache.invalidate` once its
  transaction has committed, which empties the cache and starts a new
  generation; an answer read from the database before that is not stored
  (:meth:`remember_principal` and :meth:`remember_dataset` take the
  :class:`Ticket` drawn before the read).
* **Anywhere else** (another instance, the command line, SQL by hand) a
  change committed at time *t* is seen by every request that starts after
  *t* + ``ttl``: an entry lives ``ttl`` seconds from the moment *before* the
  database was read, and never past the token's own expiry.

Keys: the SHA-256 digest of the token (the token itself is never kept),
compared again with :func:`hmac.compare_digest` as the database lookup does;
a dataset permission is keyed by the token's id and the dataset's name, and a
principal is one token, so one caller's entry never answers for another.
Only what was allowed is remembered: refusals are asked of the database
every time. At most ``max_entries`` of each kind are kept (oldest dropped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from collab.auth import Principal, same_hash


class Ticket(NamedTuple):
    """Drawn before reading the database: the generation and the time then."""

    generation: int
    at: float


class AuthCache:
    def __init__(
        self,
        ttl: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._generation = 0
        #: digest -> (digest, principal, deadline)
        self._principals: dict[bytes, tuple[bytes, Principal, float]] = {}
        #: (token id, dataset) -> deadline
        self._datasets: dict[tuple[int, str], float] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def ticket(self) -> Ticket:
        """Draw before asking the database; hand it to ``remember_*``."""
        return Ticket(self._generation, self._clock())

    def invalidate(self) -> None:
        """Forget everything (call after a permission change has committed)."""
        self._generation += 1
        self._principals.clear()
        self._datasets.clear()

    def principal(self, digest: bytes) -> Principal | None:
        entry = self._principals.get(digest)
        if entry is None:
            return None
        stored, principal, deadline = entry
        if self._clock() >= deadline:
            del self._principals[digest]
            return None
        if not same_hash(stored, digest):  # as the database lookup: compare again
            return None
        return principal

    def remember_principal(
        self,
        digest: bytes,
        principal: Principal,
        ticket: Ticket,
        expires_in: float | None = None,
    ) -> None:
        """Keep ``principal`` for ``ttl`` seconds from the ticket, or until
        the token expires (``expires_in`` seconds from the ticket) if that
        comes first."""
        if not self.enabled or ticket.generation != self._generation:
            return
        deadline = ticket.at + (self.ttl if expires_in is None else min(self.ttl, expires_in))
        if deadline <= self._clock():
            return
        _make_room(self._principals, self.max_entries)
        self._principals[digest] = (digest, principal, deadline)

    def dataset_allowed(self, principal: Principal, dataset: str) -> bool:
        key = (principal.token_id, dataset)
        deadline = self._datasets.get(key)
        if deadline is None:
            return False
        if self._clock() >= deadline:
            del self._datasets[key]
            return False
        return True

    def remember_dataset(self, principal: Principal, dataset: str, ticket: Ticket) -> None:
        """``principal`` may read ``dataset`` (checked against the database)."""
        if not self.enabled or ticket.generation != self._generation:
            return
        _make_room(self._datasets, self.max_entries)
        self._datasets[(principal.token_id, dataset)] = ticket.at + self.ttl

    def __len__(self) -> int:
        return len(self._principals) + len(self._datasets)


def _make_room(entries: dict[Any, Any], limit: int) -> None:
    while len(entries) >= limit:
        del entries[next(iter(entries))]  # the oldest insertion
