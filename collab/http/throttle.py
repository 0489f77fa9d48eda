"""Where the rate limits (collab/limits.py) meet requests and sockets.

REST: :class:`Throttle`, an ASGI middleware, takes one request per client IP
and per presented token before the route runs; over the limit it answers 429
with ``Retry-After``. Sockets: :func:`admit` takes one connection when a
socket opens, :func:`Caller.message` one message per received frame; over the
limit the socket is closed with 1008 and a reason naming the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from collab.auth import hash_token, plausible
from collab.errors import RateLimited
from collab.http.common import bearer, error_response, services
from collab.limits import Limits


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a connection's limits are counted against: its IP and its token's digest."""

    ip: str
    token: bytes | None

    @classmethod
    def of(cls, conn: HTTPConnection) -> Caller:
        token = bearer(conn)
        client = conn.client
        return cls(
            ip=client.host if client is not None else "unknown",
            token=hash_token(token) if token is not None and plausible(token) else None,
        )

    def message(self, limits: Limits) -> None:
        limits.message(self.ip, self.token)


def admit(conn: HTTPConnection) -> Caller:
    """Count a new socket against its IP and token; raises RateLimited."""
    caller = Caller.of(conn)
    services(conn).limits.connect(caller.ip, caller.token)
    return caller


class Throttle:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            conn = HTTPConnection(scope)
            svc = getattr(conn.app.state, "services", None)
            if svc is not None:  # None only before start-up finished
                caller = Caller.of(conn)
                try:
                    svc.limits.request(caller.ip, caller.token)
                except RateLimited as exc:
                    await error_response(exc)(scope, receive, send)
                    return
        await self.app(scope, receive, send)
