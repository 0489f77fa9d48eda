"""Rate limits per client IP and per token: token buckets, a pure core.

A bucket holds up to ``burst`` tokens and refills at ``per_second``; each
connection, message or request takes one. An empty bucket refuses with
:class:`~collab.errors.RateLimited` (HTTP 429 with ``Retry-After``, WebSocket
close 1008), naming the limit and when to retry. Tokens are keyed by the
SHA-256 of the presented string (no database read per message), IPs by the
peer address uvicorn reports (behind a proxy: run uvicorn with
``--proxy-headers``/``--forwarded-allow-ips`` so it is the client's).

Cost on the hot path (a sync frame): two dictionary look-ups and a few float
operations, 0.85 µs per frame measured with timeit (docs/performance.md):
under 1 % of a core at 10,000 frames a second. The tables are bounded: past ``max_keys`` entries the
idle ones (full again) are dropped, then the oldest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from collab.errors import ConfigError, RateLimited

MAX_KEYS = 65_536


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` sustained, ``burst`` at once; ``per_second == 0`` means unlimited."""

    per_second: float
    burst: float

    @classmethod
    def parse(cls, name: str, raw: str) -> Rate:
        """``"RATE:BURST"`` (``"0"`` or ``"0:0"``: unlimited)."""
        rate, _, burst = raw.partition(":")
        try:
            per_second = float(rate)
            size = float(burst) if burst else max(per_second, 1.0)
        except ValueError:
            raise ConfigError(
                f"{name} must be RATE:BURST (per second, at once), got {raw!r}"
            ) from None
        if per_second < 0 or size < 0 or (per_second > 0 and size < 1):
            raise ConfigError(f"{name} needs RATE >= 0 and BURST >= 1, got {raw!r}")
        return cls(per_second, size)

    @property
    def unlimited(self) -> bool:
        return self.per_second == 0

    def __str__(self) -> str:
        return f"{self.per_second:g}/s, {self.burst:g} at once"


class Buckets:
    """One token bucket per key, in a bounded table."""

    __slots__ = ("_clock", "_max_keys", "_table", "rate", "what")

    def __init__(
        self,
        rate: Rate,
        what: str,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.what = what  # "connections per IP", … (named in refusals)
        self._table: dict[Hashable, list[float]] = {}  # key -> [tokens, stamp]
        self._max_keys = max_keys
        self._clock = clock

    def __len__(self) -> int:
        return len(self._table)

    def take(self, key: Hashable) -> None:
        """Take one token for ``key``; raises RateLimited when there is none."""
        rate = self.rate
        if rate.unlimited:
            return
        now = self._clock()
        entry = self._table.get(key)
        if entry is None:
            if len(self._table) >= self._max_keys:
                self._evict(now)
            self._table[key] = [rate.burst - 1.0, now]
            return
        tokens = min(rate.burst, entry[0] + (now - entry[1]) * rate.per_second)
        entry[1] = now
        if tokens < 1.0:
            entry[0] = tokens
            retry = (1.0 - tokens) / rate.per_second
            raise RateLimited(
                f"rate limit: {self.what} over {rate}; retry in {retry:.1f} s",
                retry_after=round(retry, 3),
            )
        entry[0] = tokens - 1.0

    def _evict(self, now: float) -> None:
        rate = self.rate
        full = [
            key
            for key, (tokens, stamp) in self._table.items()
            if tokens + (now - stamp) * rate.per_second >= rate.burst
        ]
        for key in full:
            del self._table[key]
        while len(self._table) >= self._max_keys:  # every key busy: the oldest goes
            del self._table[next(iter(self._table))]


@dataclass(frozen=True, slots=True)
class LimitRates:
    """The configured rates (``Settings`` holds one)."""

    connect_ip: Rate
    connect_token: Rate
    messages_ip: Rate
    messages_token: Rate
    requests_ip: Rate
    requests_token: Rate


class Limits:
    """Every bucket table of one server process."""

    def __init__(self, rates: LimitRates, clock: Callable[[], float] = time.monotonic) -> None:
        self.connect_ip = Buckets(rates.connect_ip, "connections per IP", clock=clock)
        self.connect_token = Buckets(rates.connect_token, "connections per token", clock=clock)
        self.messages_ip = Buckets(rates.messages_ip, "messages per IP", clock=clock)
        self.messages_token = Buckets(rates.messages_token, "messages per token", clock=clock)
        self.requests_ip = Buckets(rates.requests_ip, "requests per IP", clock=clock)
        self.requests_token = Buckets(rates.requests_token, "requests per token", clock=clock)

    def connect(self, ip: str, token: bytes | None) -> None:
        self.connect_ip.take(ip)
        if token is not None:
            self.connect_token.take(token)

    def message(self, ip: str, token: bytes | None) -> None:
        self.messages_ip.take(ip)
        if token is not None:
            self.messages_token.take(token)

    def request(self, ip: str, token: bytes | None) -> None:
        self.requests_ip.take(ip)
        if token is not None:
            self.requests_token.take(token)
