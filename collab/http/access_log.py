"""One JSON log line per HTTP request (method, path, status, duration).

A plain ASGI middleware: WebSockets pass through untouched (the sync endpoint
logs its own join/leave/close events). Bricks answered over HTTP (200 or
304) are logged at DEBUG, not INFO: a viewer fetches thousands a minute,
/metrics counts them (``collab_bricks_sent_total``), and the formatted line
cost a third of a brick request's CPU (docs/performance.md, "HTTP bricks");
a refused or failed brick request is logged at INFO like any other.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("collab.http.access")

_BRICK = re.compile(r"/api/datasets/[^/]+/layers/[^/]+/mags/[^/]+/bricks/")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope["path"]
            level = logging.DEBUG if status < 400 and _BRICK.match(path) else logging.INFO
            if path not in ("/healthz", "/metrics") and log.isEnabledFor(level):
                log.log(
                    level,
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
