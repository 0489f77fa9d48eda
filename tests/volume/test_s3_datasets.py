"""Datasets on object storage: ``s3://`` URLs against moto's S3 server on a
loopback port, read by a real server over HTTP and the brick socket, byte for
byte as the same files read from a local folder; a second instance (another
``collab serve`` process over the same database, configured by environment)
reads them unchanged; refusals and a store that goes away."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
import zarr

from collab.config import Settings
from collab.volume import wire
from collab.volume.writer import write_agglomerate_graph
from tests.conftest import LiveServer, free_port, live_with
from tests.processes import ServerProcess, running
from tests.volume.helpers import BrickClient, make_dataset
from tests.volume.moto_s3 import MotoS3

BUCKET = "collab-data"
ROOT = f"s3://{BUCKET}/em"


@pytest.fixture
def moto() -> Iterator[MotoS3]:
    server = MotoS3().start()
    try:
        yield server
    finally:
        server.stop()
        server.start()  # moto's buckets live in this process: empty them
        server.reset()
        server.stop()


def write_small(root: Path) -> None:
    """The helpers' small dataset, with an agglomerate attachment beside its
    bare mapping (read by zarr's synchronous API in a worker thread)."""
    data = make_dataset(root)
    n = int(data.segmentation.max())
    mapping = np.zeros(n + 1, dtype=np.uint64)
    mapping[1:] = 1 + (np.arange(1, n + 1) - 1) // 4
    edges = np.array([(s, s + 1) for s in range(1, n) if mapping[s] == mapping[s + 1]])
    positions = np.zeros((n + 1, 3), dtype=np.int64)
    for s in range(1, n + 1):
        found = np.argwhere(data.segmentation == s)
        if len(found):
            positions[s] = found[0]
    write_agglomerate_graph(
        root, "segmentation", "graph", mapping, edges, np.linspace(0.1, 0.9, len(edges)), positions
    )


def write_ome(root: Path) -> None:
    """A small OME-Zarr (NGFF 0.5): an image of two levels and one label,
    unsharded 32³ chunks (zarr's decode path, not stored bytes)."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (40, 70, 90), dtype=np.uint8)  # z, y, x
    labels = (1 + np.indices((40, 70, 90)).sum(axis=0) // 30).astype(np.uint16)
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in ("z", "y", "x")]

    def multiscale(prefix: str, data: np.ndarray) -> dict[str, Any]:
        datasets = []
        for level in range(2):
            f = 2**level
            part = data[:, ::f, ::f]
            array = zarr.create_array(
                store=str(root / prefix / str(level)),
                shape=part.shape,
                chunks=(32, 32, 32),
                dtype=part.dtype,
                fill_value=0,
                dimension_names=["z", "y", "x"],
            )
            array[:] = part
            scale = [40.0, 4.0 * f, 4.0 * f]
            datasets.append(
                {
                    "path": str(level),
                    "coordinateTransformations": [{"type": "scale", "scale": scale}],
                }
            )
        return {"axes": axes, "datasets": datasets}

    def group(path: Path, attrs: dict[str, Any]) -> None:
        path.mkdir(parents=True, exist_ok=True)
        doc = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": attrs}}
        (path / "zarr.json").write_text(json.dumps(doc))

    group(root, {"version": "0.5", "multiscales": [multiscale("", image)]})
    group(root / "labels", {"version": "0.5", "labels": ["cells"]})
    group(
        root / "labels" / "cells",
        {"version": "0.5", "multiscales": [multiscale("labels/cells", labels)]},
    )


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("s3src")
    write_small(base / "small")
    write_ome(base / "ome")
    return {"small": base / "small", "ome": base / "ome"}


@pytest.fixture
async def remote(
    moto: MotoS3, folders: dict[str, Path], settings: Settings
) -> AsyncIterator[LiveServer]:
    """A live server whose roots are its own folder and ``s3://collab-data/em``;
    each dataset is in both places."""
    moto.bucket(BUCKET)
    for name, folder in folders.items():
        moto.upload(folder, BUCKET, f"em/{name}")
    configured = moto.settings(settings, ROOT)
    for name, folder in folders.items():
        shutil.copytree(folder, Path(configured.roots[0]) / name)
    async with live_with(configured) as live:
        yield live


async def register(live: LiveServer, name: str, url: str) -> httpx.Response:
    async with live.client(live.admin_token) as http:
        return await http.post("/api/datasets", json={"name": name, "url": url})


def every_brick(layer: dict[str, Any]) -> dict[str, list[tuple[int, int, int]]]:
    """Per mag, every brick of the layer's box and a ring of one outside it."""
    out = {}
    top, size = layer["boundingBox"]["topLeft"], layer["boundingBox"]["size"]
    for mag in layer["mags"]:
        m = [int(f) for f in mag.split("-")] if "-" in mag else [int(mag)] * 3
        hi = [-(-(top[i] + size[i]) // (32 * m[i])) for i in range(3)]
        out[mag] = [
            (x, y, z) for x in range(hi[0] + 1) for y in range(hi[1] + 1) for z in range(hi[2] + 1)
        ]
    return out


async def http_bricks(
    http: httpx.AsyncClient,
    name: str,
    layer: str,
    mag: str,
    bricks: list[tuple[int, int, int]],
    mapping: str | None = None,
) -> list[tuple[int, bytes]]:
    out = []
    params = {"mapping": mapping} if mapping else None
    for x, y, z in bricks:
        path = f"/api/datasets/{name}/layers/{layer}/mags/{mag}/bricks/{x}/{y}/{z}"
        r = await http.get(path, params=params)
        out.append((r.status_code, r.content))
    return out


async def socket_bricks(
    live: LiveServer,
    name: str,
    layer: str,
    mag: str,
    bricks: list[tuple[int, int, int]],
    encoding: int,
    mapping: str | None = None,
) -> tuple[dict[tuple[int, int, int], tuple[int, bytes]], tuple[int, int, int, int, int]]:
    m = [int(f) for f in mag.split("-")] if "-" in mag else [int(mag)] * 3
    client = await BrickClient.connect(
        f"{live.ws_url}/data/{name}/{layer}?token={live.admin_token}"
    )
    try:
        records = await client.fetch(1, (m[0], m[1], m[2]), bricks, encoding, mapping)
        return {r.brick: (r.status, r.payload) for r in records}, client.done[1]
    finally:
        await client.close()


async def test_s3_datasets_read_as_the_local_copy(remote: LiveServer) -> None:
    live = remote
    for name in ("small", "ome"):
        r = await register(live, f"{name}-s3", f"{ROOT}/{name}/")
        assert r.status_code == 201, r.text
        s3 = r.json()
        assert s3["url"] == f"{ROOT}/{name}"  # one spelling: no trailing slash
        local = (await register(live, f"{name}-local", name)).json()
        assert s3["layers"] == local["layers"] and s3["voxelSize"] == local["voxelSize"]
        layers = {layer["name"]: layer for layer in s3["layers"]}
        async with live.client(live.admin_token) as http:
            for layer_name, layer in layers.items():
                mappings = [None, *layer.get("mappings", [])]
                for mag, bricks in every_brick(layer).items():
                    for mapping in mappings:
                        want = await http_bricks(
                            http, f"{name}-local", layer_name, mag, bricks, mapping
                        )
                        got = await http_bricks(
                            http, f"{name}-s3", layer_name, mag, bricks, mapping
                        )
                        assert got == want, (name, layer_name, mag, mapping)
                        assert {s for s, _ in got} == {200, 404}
                    for encoding in (0, 1):
                        want_s, done_want = await socket_bricks(
                            live, f"{name}-local", layer_name, mag, bricks, encoding
                        )
                        got_s, done_got = await socket_bricks(
                            live, f"{name}-s3", layer_name, mag, bricks, encoding
                        )
                        assert got_s == want_s and done_got[1:] == done_want[1:]
                        assert done_got[4] == 0  # nothing failed
            if name == "small":
                base = "/api/datasets/small-{}/layers/segmentation"
                for path in (
                    "/mappings/cells",
                    "/agglomerates/graph",
                    "/agglomerates/graph/2",
                    "/segments/at?x=60&y=30&z=40&mapping=graph",
                    "/segments/7?mag=2",
                ):
                    want_r = await http.get(base.format("local") + path)
                    got_r = await http.get(base.format("s3") + path)
                    assert want_r.status_code == 200, want_r.text
                    assert got_r.json() == want_r.json(), path
                assert layers["segmentation"]["mappings"] == ["cells", "graph"]
                assert layers["segmentation"]["agglomerateGraphs"] == ["graph"]
    # Bricks read once are served from the cache, as for local datasets.
    volumes = live.services.volumes
    hits = volumes.cache.hits
    async with live.client(live.admin_token) as http:
        r = await http.get("/api/datasets/small-s3/layers/color/mags/1/bricks/1/1/1")
        assert r.status_code == 200
    assert volumes.cache.hits == hits + 1


async def test_a_second_instance_reads_the_same_dataset(
    remote: LiveServer, moto: MotoS3, database: str, tmp_path: Path
) -> None:
    """Another ``collab serve`` process over the same database, configured by
    its environment (COLLAB_DATASET_ROOTS with an s3:// root, the endpoint,
    the AWS_* credentials), serves the dataset the first one registered."""
    live = remote
    r = await register(live, "shared", f"{ROOT}/small")
    assert r.status_code == 201
    segmentation = next(x for x in r.json()["layers"] if x["name"] == "segmentation")
    bricks = every_brick(segmentation)["1"]
    async with live.client(live.admin_token) as http:
        want = await http_bricks(http, "shared", "segmentation", "1", bricks, "graph")
    other = ServerProcess(
        tmp_path / "second",
        free_port(),
        live.admin_token,
        database_url=database,
        env={
            **moto.env(),
            "COLLAB_DATASET_ROOTS": f"{tmp_path / 'second' / 'datasets'}:{ROOT}",
        },
    )
    with running(other):
        async with httpx.AsyncClient(
            base_url=other.url, headers=other.headers(), timeout=30
        ) as http:
            meta = (await http.get("/api/datasets/shared")).json()
            assert meta["url"] == f"{ROOT}/small" and "unavailable" not in meta
            got = await http_bricks(http, "shared", "segmentation", "1", bricks, "graph")
            assert got == want
            r = await http.get("/api/datasets/shared/layers/segmentation/agglomerates/graph/2")
            assert r.status_code == 200
            # It registers too: the same refusals, from its own environment.
            r = await http.post("/api/datasets", json={"name": "again", "url": f"{ROOT}/ome"})
            assert r.status_code == 201, r.text
            r = await http.post(
                "/api/datasets", json={"name": "x", "url": f"s3://{BUCKET}/elsewhere"}
            )
            assert r.status_code == 403
        client = await BrickClient.connect(
            f"{other.ws_url}/data/shared/color?token={live.admin_token}"
        )
        try:
            records = await client.fetch(1, (1, 1, 1), [(0, 0, 0), (3, 2, 2)], encoding=1)
            assert sorted(r.status for r in records) == [wire.STATUS_OK] * 2
        finally:
            await client.close()
    async with live.client(live.admin_token) as http:
        assert (await http.get("/api/datasets/again")).status_code == 200


async def test_refusals(remote: LiveServer, moto: MotoS3) -> None:
    live = remote
    moto.bucket("collab-empty")
    moto.upload(Path(__file__).parent, "collab-empty", "junk/not-a-dataset")
    cases = [
        (f"s3://{BUCKET}/other/small", 403, "forbidden"),  # outside the roots
        (f"s3://{BUCKET}/emx/small", 403, "forbidden"),  # a prefix of a segment is not under
        (f"{ROOT}/../small", 403, "forbidden"),
        (f"{ROOT}//small", 403, "forbidden"),
        (f"{ROOT}/small?versionId=1", 400, "bad_request"),
        ("https://example.org/em/small", 403, "forbidden"),
        (f"gs://{BUCKET}/em/small", 403, "forbidden"),
        (f"{ROOT}/nothing-here", 404, "not_found"),
    ]
    for url, status, code in cases:
        r = await register(live, "x", url)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (url, r.text)
        assert "collab-test-secret" not in r.text
    # A bucket that does not exist, and a prefix holding no dataset.
    extra = ("s3://no-such-bucket/em", "s3://collab-empty/junk")
    settings = live.settings
    async with live_with(
        moto.settings(settings, ROOT, *extra).with_overrides(port=free_port())
    ) as other:
        r = await register(other, "x", "s3://no-such-bucket/em/small")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), r.text
        r = await register(other, "x", "s3://collab-empty/junk/not-a-dataset")
        assert (r.status_code, r.json()["error"]["code"]) == (422, "bad_layout"), r.text


async def _deny(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An S3 endpoint that refuses every credential (403 AccessDenied)."""
    body = b'<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>'
    try:
        for _ in range(100):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/xml\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An endpoint that takes requests and never answers."""
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("handler", "status", "code", "says"),
    [
        (_deny, 502, "storage_refused", "refuses collab's credentials"),
        (_silent, 503, "unavailable", "it timed out"),
    ],
)
async def test_a_misbehaving_store(
    settings: Settings, moto: MotoS3, handler: Any, status: int, code: str, says: str
) -> None:
    """Refused credentials are the server's configuration (502); a store that
    never answers is 503 once the timeout and retries are spent."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        configured = moto.settings(settings, ROOT).with_overrides(
            object_storage=moto.storage(
                endpoint_url=f"http://127.0.0.1:{port}", timeout_seconds=0.5, retries=0
            )
        )
        async with live_with(configured) as live:
            r = await register(live, "x", f"{ROOT}/small")
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
            assert says in r.json()["error"]["message"]
            assert "collab-test-secret" not in r.text
    finally:
        server.close()
        await server.wait_closed()


async def test_the_store_going_away(
    remote: LiveServer, moto: MotoS3, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopped mid-run: bricks already read still come from the cache; others
    are 503 over HTTP and failed records on the socket (which stays open);
    the server keeps answering, and reads again once the store is back. The
    log says so once per spell, without credentials."""
    caplog.set_level(logging.INFO, "collab.volume.storage")
    live = remote
    assert (await register(live, "small", f"{ROOT}/small")).status_code == 201
    brick = "/api/datasets/small/layers/color/mags/1/bricks/{}/{}/{}"
    async with live.client(live.admin_token) as http:
        assert (await http.get(brick.format(0, 0, 0))).status_code == 200
        before = (await http.get(brick.format(1, 0, 0))).content
        client = await BrickClient.connect(
            f"{live.ws_url}/data/small/segmentation?token={live.admin_token}"
        )
        try:
            moto.stop()
            assert (await http.get(brick.format(0, 0, 0))).status_code == 200  # cached
            r = await http.get(brick.format(2, 1, 1))
            assert (r.status_code, r.json()["error"]["code"]) == (503, "unavailable"), r.text
            assert f"{ROOT}/small" in r.json()["error"]["message"]
            assert "the connection failed" in r.json()["error"]["message"]
            r = await http.get("/api/datasets/small/layers/segmentation/mappings/cells")
            assert r.status_code == 503, r.text  # never loaded: the store is asked
            records = await client.fetch(1, (1, 1, 1), [(0, 0, 0), (1, 1, 1)], encoding=1)
            assert [r.status for r in records] == [wire.STATUS_FAILED] * 2
            assert client.done[1][4] == 2
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/api/datasets/small")).status_code == 200
            # An instance that has not opened it yet: 503, the socket 1013,
            # listed from the stored metadata.
            async with live_with(live.settings.with_overrides(port=free_port())) as other:
                async with other.client(other.admin_token) as http2:
                    r = await http2.get("/api/datasets/small")
                    assert (r.status_code, r.json()["error"]["code"]) == (503, "unavailable")
                    listed = (await http2.get("/api/datasets")).json()["datasets"]
                    assert [(d["name"], d.get("unavailable")) for d in listed] == [("small", True)]
                refused = await BrickClient.connect(
                    f"{other.ws_url}/data/small/color?token={other.admin_token}"
                )
                try:
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await refused.read_one()
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
                finally:
                    await refused.close()
            moto.start()  # the same port: the store is back
            records = await client.fetch(2, (1, 1, 1), [(0, 0, 0), (1, 1, 1)], encoding=1)
            assert [r.status for r in records] == [wire.STATUS_OK] * 2
            assert (await http.get(brick.format(1, 0, 0))).content == before
            assert (await http.get(brick.format(2, 1, 1))).status_code == 200
        finally:
            await client.close()
    said = [r for r in caplog.records if r.name == "collab.volume.storage"]
    # Once per instance and spell, however many reads and reopenings met it.
    assert sorted(r.getMessage() for r in said) == [
        "object store answers again",
        "object store failing",
        "object store failing",
    ]
    for record in said:
        assert "collab-test-secret" not in str(record.__dict__)
        assert "collab-test-key" not in str(record.__dict__)
