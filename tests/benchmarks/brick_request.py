"""Where the time of one HTTP brick request goes, in-process, layer by layer.

    python tests/benchmarks/brick_request.py [--keep DIR] [--requests 3000] [--repeats 5]

The real app (its lifespan, embedded PostgreSQL, the demo dataset's bricks
warm in the brick cache) is driven through uvicorn's own HTTP protocol
objects over a transport that only counts bytes: one keep-alive connection,
GETs of the 32³ uint8 color bricks in turn. No socket and no client, so the
figures are the server's CPU per request without the kernel's part, and
stay comparable on a busy machine (best of ``--repeats`` runs). Each line
changes one thing (docs/performance.md, "HTTP bricks").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from collab import logs
from collab.auth import new_token
from collab.config import Settings
from collab.demo import ensure_dataset
from collab.errors import Conflict
from collab.http.access_log import AccessLog
from collab.http.throttle import Throttle
from collab.server import uvicorn_config
from tests.benchmarks.harness import machine
from tests.processes import NO_LIMITS

PATH = "/api/datasets/demo/layers/color/mags/1/bricks"


class CountingTransport(asyncio.Transport):
    """Takes writes and keeps only the first bytes of each response."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.heads: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(self.heads) < 4:
            self.heads.append(bytes(data[:12]))
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def drive(protocol_class: type, config: uvicorn.Config, token: str, n: int) -> float:
    """Seconds per request over ``n`` GETs on one connection."""
    loop = asyncio.get_running_loop()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = CountingTransport()
    protocol.connection_made(transport)
    complete = protocol.on_response_complete
    waiter: asyncio.Future[None] = loop.create_future()

    def on_response_complete() -> None:
        complete()
        waiter.set_result(None)

    protocol.on_response_complete = on_response_complete  # read when each cycle is made
    requests = []
    for i in range(4096):
        x, y, z = i % 16, (i // 16) % 16, i // 256
        requests.append(
            f"GET {PATH}/{x}/{y}/{z} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"authorization: Bearer {token}\r\n\r\n".encode()
        )

    async def one(i: int) -> None:
        nonlocal waiter
        waiter = loop.create_future()
        protocol.data_received(requests[i % len(requests)])
        await waiter

    for i in range(200):  # warm: statements prepared, the auth cache filled
        await one(i)
    assert transport.heads[0].startswith(b"HTTP/1.1 200"), transport.heads
    start = transport.written
    t0 = time.perf_counter()
    for i in range(n):
        await one(i)
    elapsed = time.perf_counter() - t0
    assert not transport.closed, "the server closed the keep-alive connection"
    assert transport.written - start >= n * 32768
    protocol.connection_lost(None)
    return elapsed / n


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, default=Path("/tmp/collab-brick-request"))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="only the server as shipped (for py-spy), 20 repeats",
    )
    args = parser.parse_args()
    admin = new_token()
    # Rate limits off, as in every benchmark (tests/benchmarks/harness.py).
    settings = Settings.from_env({**NO_LIMITS, "COLLAB_ADMIN_TOKEN": admin})
    settings = settings.with_overrides(data_dir=args.keep)
    dataset = ensure_dataset(settings)
    print(f"machine: {machine()}")
    config = uvicorn_config(settings)
    config.load()
    app = config.app
    null = open(os.devnull, "w")  # noqa: SIM115, ASYNC230  # JSON log lines formatted, dropped
    logs.configure("INFO")
    logging.getLogger().handlers[0].stream = null  # type: ignore[attr-defined]
    async with app.router.lifespan_context(app):
        svc = app.state.services
        with contextlib.suppress(Conflict):  # registered by an earlier run
            await svc.volumes.register_location("demo", str(dataset), None)
        async with svc.pool.acquire() as db:
            from collab.store import identity

            user_id = await identity.create_user(db, "bench", None, ["annotator"])
            _, annotator = await identity.create_token(db, user_id=user_id)
        cache = svc.auth_cache
        ttl = cache.ttl

        def level(name: str) -> Callable[[], None]:
            return lambda: logging.getLogger().setLevel(name)

        def cache_on(on: bool) -> Callable[[], None]:
            def apply() -> None:
                cache.ttl = ttl if on else 0.0
                cache.invalidate()

            return apply

        def middlewares(*kept: type) -> Callable[[], None]:
            def apply() -> None:
                app.user_middleware = [m for m in original if m.cls in kept]
                app.middleware_stack = None  # rebuilt at the next request

            return apply

        original = list(app.user_middleware)
        steps: list[tuple[str, type, str, list[Callable[[], None]]]] = [
            (
                "h11, token and dataset asked of PostgreSQL per request",
                H11Protocol,
                annotator,
                [cache_on(False), level("INFO"), middlewares(AccessLog, Throttle)],
            ),
            ("  same, admin token (one query fewer)", H11Protocol, admin, []),
            ("+ remembered permissions (auth cache)", H11Protocol, annotator, [cache_on(True)]),
            (
                "+ httptools parser = as shipped (log level INFO)",
                HttpToolsProtocol,
                annotator,
                [],
            ),
            (
                "  same, access log below its level (COLLAB_LOG_LEVEL=WARNING)",
                HttpToolsProtocol,
                annotator,
                [level("WARNING")],
            ),
            ("  same, without Throttle", HttpToolsProtocol, annotator, [middlewares(AccessLog)]),
            (
                "  same, without AccessLog and Throttle",
                HttpToolsProtocol,
                annotator,
                [middlewares()],
            ),
        ]
        if args.profile:
            steps = [
                (
                    "as shipped (log level INFO)",
                    HttpToolsProtocol,
                    annotator,
                    [level("INFO"), middlewares(AccessLog, Throttle)],
                )
            ]
            args.repeats = 20
        print(
            f"µs of server CPU per brick request (best of {args.repeats} × {args.requests}, "
            "one keep-alive connection, warm brick cache):"
        )
        for label, protocol_class, token, changes in steps:
            for change in changes:
                change()
            best = min(
                [
                    await drive(protocol_class, config, token, args.requests)
                    for _ in range(args.repeats)
                ]
            )
            print(f"  {label:<72} {best * 1e6:7.1f} µs  ({1 / best:,.0f}/s)", flush=True)
        middlewares(AccessLog, Throttle)()
    null.close()


if __name__ == "__main__":
    asyncio.run(main())
