"""One ``collab serve`` process per fuzz module (its own database), attacked
from outside with hypothesis-made input; every target ends by proving that
the server still saves a bystander's work (:func:`assert_still_saving`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from pycrdt import Doc, Map
from websockets.sync.client import connect

from collab.auth import new_token
from collab.sync import messages as m
from tests.conftest import free_port
from tests.processes import NO_LIMITS, ServerProcess, running

#: Inputs per target: a few thousand in CI; the benchmark run sets 100000.
EXAMPLES = int(os.environ.get("COLLAB_FUZZ_EXAMPLES", "1500"))

#: A target's time limit: 15 min at CI size, none for a benchmark-size run.
FUZZ_TIMEOUT = 900 if EXAMPLES <= 10_000 else 0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("COLLAB_FUZZ_RANDOM") is None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


@pytest.fixture(scope="module")
def server(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    import asyncio

    import asyncpg

    from tests.conftest import TEMPLATE, _db_url

    name = f"fuzz_{os.getpid()}_{free_port()}"

    async def create() -> None:
        conn = await asyncpg.connect(postgres)
        try:
            await conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        finally:
            await conn.close()

    asyncio.run(create())
    root = tmp_path_factory.mktemp("fuzz")
    # The fuzzers open a socket or send a request per input, hundreds a
    # second from one token: the rate limits (tests/limits/) are off here so
    # every input reaches the code it attacks.
    proc = ServerProcess(
        root / "data", free_port(), new_token(), _db_url(postgres, name), env=NO_LIMITS
    )
    with running(proc):
        yield proc


def user(server: ServerProcess, name: str = "fuzzer") -> tuple[int, str]:
    r = httpx.post(
        f"{server.url}/api/users",
        json={"name": name, "roles": ["annotator", "manager", "reviewer"]},
        headers=server.headers(),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"]), str(r.json()["token"])


def annotation(server: ServerProcess, token: str) -> int:
    r = httpx.post(
        f"{server.url}/api/annotations", json={"name": "fuzzed"}, headers=server.headers(token)
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


#: Log events that mean the server broke on an input instead of refusing it.
FAILURES = (
    "repair failed",
    "unhandled error",
    "frame handling failed",
    "room failed to load",
    "materialising failed",
)


def assert_still_saving(server: ServerProcess, token: str, ann: int) -> None:
    """The server answers /healthz 200 and acknowledges a new update in
    ``ann`` (a room only this check writes to, or one quiet by now), and its
    log holds no failure of its own (a repair that raised, an unhandled
    error): an input the server took must not break it quietly."""
    assert server.alive(), server.tail()
    failures = [
        line
        for line in server.log.read_text(errors="replace").splitlines()
        if any(f'"event":"{event}"' in line for event in FAILURES)
    ]
    assert not failures, f"{len(failures)} failures logged; the first: {failures[0][:3000]}"
    r = httpx.get(f"{server.url}/healthz", timeout=10)
    assert r.status_code == 200, r.text
    doc = Doc()
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    saved_frame = bytes((m.MessageType.SAVED,))
    with connect(
        f"{server.ws_url}/sync/{ann}/skeleton?token={token}&acks=1",
        max_size=None,
        compression=None,
        open_timeout=10,
        ping_interval=None,  # its ping payloads use the random module: hypothesis objects
    ) as ws:
        before = None
        for _ in range(10_000):  # bounded: the join's "saved" comes first
            frame = ws.recv(timeout=10)
            if isinstance(frame, bytes) and frame[:1] == saved_frame:
                before = m.parse_saved(frame)
                break
        assert before is not None
        with doc.transaction():
            doc.get("trees", type=Map)[f"bystander-{before}"] = Map({"name": "b"})
            doc.get("nodes", type=Map)[f"b-{before}"] = {
                "treeId": f"bystander-{before}",
                "position": [1, 2, 3],
            }
        ws.send(m.pack_update(updates[-1]))
        for _ in range(10_000):  # bounded: frames until a newer version is saved
            frame = ws.recv(timeout=10)
            saved = isinstance(frame, bytes) and frame[:1] == saved_frame
            if saved and m.parse_saved(frame) > before:
                return
        raise AssertionError("no acknowledgement for the bystander's update")


def here() -> Path:
    return Path(__file__).parent
