"""Shared fixtures: one embedded PostgreSQL per test session, a migrated
template database cloned per test, and a real uvicorn server on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn

from collab.app import KINDS
from collab.auth import new_token
from collab.config import Settings
from collab.document.kind import DocumentKind
from collab.server import uvicorn_config
from collab.store.embedded import EmbeddedPostgres
from collab.store.migrations import migrate

TEMPLATE = "collab_template"
JS = Path(__file__).parent / "js"
_counter = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the embedded server with a migrated template database."""
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "postgres")
    url = pg.start()

    async def make_template() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            await conn.execute(f"CREATE DATABASE {TEMPLATE}")
        finally:
            await conn.close()
        conn = await asyncpg.connect(_db_url(url, TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(make_template())
    try:
        yield url
    finally:
        pg.stop()


def _db_url(url: str, name: str) -> str:
    # pgserver URLs look like postgresql://postgres:@/postgres?host=/socket/dir
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
async def database(postgres: str) -> AsyncIterator[str]:
    name = f"t{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(postgres)
    try:
        await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    finally:
        await conn.close()
    yield _db_url(postgres, name)
    conn = await asyncpg.connect(postgres)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@dataclass
class LiveServer:
    url: str
    ws_url: str
    admin_token: str
    settings: Settings
    server: uvicorn.Server

    @property
    def app(self):  # type: ignore[no-untyped-def]
        return self.server.config.loaded_app

    @property
    def services(self):  # type: ignore[no-untyped-def]
        app = self.server.config.app
        return app.state.services

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    def sync_url(
        self, annotation: int, doc: str = "skeleton", token: str | None = None, **params: str
    ) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items() if v is not None)
        return f"{self.ws_url}/sync/{annotation}/{doc}" + (f"?{query}" if query else "")

    async def user(self, name: str = "ann", roles: list[str] | None = None) -> tuple[int, str]:
        async with self.client(self.admin_token) as c:
            r = await c.post("/api/users", json={"name": name, "roles": roles or ["annotator"]})
            assert r.status_code == 201, r.text
            return r.json()["id"], r.json()["token"]

    async def annotation(self, token: str, name: str = "a") -> int:
        async with self.client(token) as c:
            r = await c.post("/api/annotations", json={"name": name})
            assert r.status_code == 201, r.text
            return int(r.json()["id"])


async def start_server(settings: Settings, kinds: Sequence[DocumentKind] = KINDS) -> uvicorn.Server:
    config = uvicorn_config(settings, kinds=kinds, log_level="warning")
    server = uvicorn.Server(config)
    server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    server._collab_task = task  # type: ignore[attr-defined]
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    if task.done():
        task.result()
    assert server.started, "server did not start"
    return server


async def stop_server(server: uvicorn.Server) -> None:
    server.should_exit = True
    task = server._collab_task  # type: ignore[attr-defined]
    await asyncio.wait_for(task, 30)


@pytest.fixture
def settings(database: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database,
        admin_token=new_token(),
        port=free_port(),
        room_idle_seconds=0.5,
        snapshot_every=50,
    )


@contextlib.asynccontextmanager
async def live_with(
    settings: Settings, kinds: Sequence[DocumentKind] = KINDS
) -> AsyncIterator[LiveServer]:
    """A live server with settings (and document kinds) of the test's own."""
    server = await start_server(settings, kinds)
    live = LiveServer(
        url=f"http://127.0.0.1:{settings.port}",
        ws_url=f"ws://127.0.0.1:{settings.port}",
        admin_token=settings.admin_token or "",
        settings=settings,
        server=server,
    )
    try:
        yield live
    finally:
        await stop_server(live.server)


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_with(settings) as server:
        yield server


def with_settings(settings: Settings, **changes: object) -> Settings:
    return replace(settings, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def node_modules() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js >= 20 and npm are required for the protocol tests")
    if not (JS / "node_modules" / "y-websocket").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=JS,
            check=True,
            timeout=600,
        )
    return JS / "node_modules"
