"""Running the app under uvicorn with the settings that matter (field notes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import uvicorn

from collab.app import KINDS, create_app
from collab.config import Settings
from collab.document.kind import DocumentKind
from collab.http.common import Services
from collab.http.ws_protocol import SyncProtocol


def uvicorn_config(
    settings: Settings,
    on_ready: Callable[[Services], Awaitable[None]] | None = None,
    *,
    kinds: Sequence[DocumentKind] = KINDS,
    **overrides: object,
) -> uvicorn.Config:
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        # Per-message deflate multiplies fan-out latency by ~250 (field notes).
        "ws_per_message_deflate": False,
        # The C parser: h11 (pure Python) cost ~80 µs per HTTP request
        # (docs/performance.md, "HTTP bricks"). Named, so that a missing
        # httptools fails at start instead of falling back to h11.
        "http": "httptools",
        "ws_max_size": settings.max_frame_bytes,
        # uvicorn's sans-I/O protocol, refusing oversized frames readably.
        "ws": SyncProtocol,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 10,
    }
    options.update(overrides)
    return uvicorn.Config(create_app(settings, on_ready, kinds), **options)  # type: ignore[arg-type]


def serve(
    settings: Settings, on_ready: Callable[[Services], Awaitable[None]] | None = None
) -> None:
    uvicorn.Server(uvicorn_config(settings, on_ready)).run()
