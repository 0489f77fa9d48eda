"""REST writes go to the instance that owns their annotation.

With several instances (docs/architecture.md, "Several instances") one
process owns an annotation: its rooms number versions, its materialiser
and proofreading sequencing run there. A write (any method but GET, HEAD
and OPTIONS) under ``/api/annotations/{id}/`` arriving at another instance
(but lookups, :data:`_READS`) is passed on, as it came (headers, body streamed both ways), to the
owner's url from the lease; the owner checks permissions as for any
request. The instance takes the annotation itself when nobody owns it.
With one instance nothing is passed on: the lookup is a dictionary hit
for annotations it owns, one statement otherwise.

A request passed on carries ``x-collab-forwarded``: the receiver handles
it whatever it owns (no loops; a lease that moved meanwhile makes the
write a mirror's, forwarded through the room inbox like a client's).
The owner unreachable: 503, retry.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collab.errors import Unavailable
from collab.http.common import error_response

log = logging.getLogger("collab.http.to_owner")

FORWARDED = b"x-collab-forwarded"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_ANNOTATION = re.compile(r"^/api/annotations/(\d{1,18})/")
#: POSTs that only read (a body too long for a query string): served where
#: they arrive, like GETs (the client's agglomerate lookups, batched).
_READS = re.compile(r"^/api/annotations/\d{1,18}/volume/[^/]+/agglomerates$")
#: Hop-by-hop headers (RFC 9110 §7.6.1) and what the client sets itself.
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
#: Long uploads and imports: reads may take minutes; connecting may not.
TIMEOUT = httpx.Timeout(connect=5.0, read=600.0, write=600.0, pool=5.0)


class ToOwner:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE:
            await self.app(scope, receive, send)
            return
        match = _ANNOTATION.match(scope["path"])
        state = scope["app"].state
        services = getattr(state, "services", None)
        if (
            match is None
            or services is None
            or _READS.match(scope["path"])
            or any(k == FORWARDED for k, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        try:
            url = await services.rooms.cluster.write_owner(int(match[1]))
        except Exception:  # no such annotation, the database away: the route answers
            url = None
        if url is None:
            await self.app(scope, receive, send)
            return
        await _pass_on(state.owner_client, url, scope, receive, send)


async def _pass_on(
    client: httpx.AsyncClient, base: str, scope: Scope, receive: Receive, send: Send
) -> None:
    async def body() -> AsyncIterator[bytes]:
        while True:
            message: Message = await receive()
            if message["type"] != "http.request":
                return
            yield message.get("body", b"")
            if not message.get("more_body", False):
                return

    query = scope.get("query_string", b"")
    target = base + scope["path"] + (f"?{query.decode('latin-1')}" if query else "")
    headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
    headers.append((FORWARDED, b"1"))
    request = client.build_request(scope["method"], target, headers=headers, content=body())
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        log.warning("owner unreachable", extra={"url": base, "error": str(exc)})
        await error_response(
            Unavailable("the annotation's owning instance is not reachable; retry")
        )(scope, receive, send)
        return
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP],
            }
        )
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()
