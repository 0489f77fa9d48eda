"""Small datasets written with zarr-python, and a brick-socket client."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from collab.volume import wire
from collab.volume.mags import Mag
from collab.volume.writer import write_layer, write_mapping, write_properties


@dataclass
class SmallDataset:
    root: Path
    color: np.ndarray
    segmentation: np.ndarray
    mapping: np.ndarray


def make_dataset(root: Path, shape: tuple[int, int, int] = (100, 80, 70)) -> SmallDataset:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    color = rng.integers(1, 255, shape, dtype=np.uint8)
    x, y, z = np.indices(shape)
    seg = (1 + x // 25 + 4 * (y // 20) + 16 * (z // 35)).astype(np.uint32)
    mapping = np.zeros(int(seg.max()) + 1, dtype=np.uint32)
    mapping[1:] = 1000 + np.arange(1, len(mapping)) // 2
    layers = [
        write_layer(root, "color", "color", color, [Mag(1, 1, 1), Mag(2, 2, 1), Mag(4, 4, 2)]),
        write_layer(root, "segmentation", "segmentation", seg, [Mag(1, 1, 1), Mag(2, 2, 2)]),
    ]
    write_mapping(root, "segmentation", "cells", mapping)
    write_properties(root, root.name, (4.0, 4.0, 40.0), layers)
    return SmallDataset(root, color, seg, mapping)


def expected_brick(data: np.ndarray, b: tuple[int, int, int]) -> np.ndarray:
    out = np.zeros((32, 32, 32), dtype=data.dtype)
    part = data[b[0] * 32 : b[0] * 32 + 32, b[1] * 32 : b[1] * 32 + 32, b[2] * 32 : b[2] * 32 + 32]
    out[: part.shape[0], : part.shape[1], : part.shape[2]] = part
    return out


@dataclass
class BrickClient:
    """Collects records, errors and done frames from a brick socket."""

    ws: Any
    records: list[wire.Record] = field(default_factory=list)
    errors: list[tuple[int, int, str]] = field(default_factory=list)
    done: dict[int, tuple[int, int, int, int, int]] = field(default_factory=dict)
    #: PUSHED frames: (version, mag, records).
    pushed: list[tuple[int, tuple[int, int, int], list[wire.Record]]] = field(default_factory=list)
    #: MAPPED frames: (version, reset, pairs).
    mapped: list[tuple[int, bool, Any]] = field(default_factory=list)
    frames: int = 0
    closed: tuple[int, str] | None = None

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> BrickClient:
        ws = await websockets.connect(url, max_size=64 * 2**20, compression=None, **kwargs)
        return cls(ws)

    async def read_one(self, timeout: float = 10) -> None:
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(frame, bytes), frame
        self.frames += 1
        kind = frame[0]
        if kind == wire.BRICKS:
            self.records.extend(wire.unpack_bricks(frame))
        elif kind == wire.ERROR:
            self.errors.append(wire.unpack_error(frame))
        elif kind == wire.DONE:
            d = wire.unpack_done(frame)
            self.done[d[0]] = d
        elif kind == wire.PUSHED:
            self.pushed.append(wire.unpack_pushed(frame))
        elif kind == wire.MAPPED:
            self.mapped.append(wire.unpack_mapped(frame))
        else:
            raise AssertionError(f"unknown frame 0x{kind:02x}")

    async def until(self, condition: Any, timeout: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, "timed out waiting for frames"
            await self.read_one(left)

    async def fetch(
        self,
        rid: int,
        mag: tuple[int, int, int],
        bricks: list[tuple[int, int, int]],
        encoding: int = 0,
        mapping: str | None = None,
    ) -> list[wire.Record]:
        await self.ws.send(wire.pack_request(rid, mag, bricks, encoding, mapping))
        await self.until(lambda: rid in self.done)
        return [r for r in self.records if r.request_id == rid]

    async def close(self) -> None:
        await self.ws.close()


def damage_chunk(array: Path, chunk: tuple[int, int, int]) -> None:
    """Overwrite one inner chunk of the array's one shard (a WEBKNOSSOS
    zarr3 layer: channel first, index at the end — an (offset, length) pair
    of uint64 per chunk in C order, then a crc32c) with bytes that do not
    decompress, leaving the index and the other chunks intact."""
    meta = json.loads((array / "zarr.json").read_text())
    inner = meta["codecs"][0]["configuration"]["chunk_shape"][1:]
    grid = [-(-n // c) for n, c in zip(meta["shape"][1:], inner, strict=True)]
    shard = array / "c" / "0" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    count = grid[0] * grid[1] * grid[2]
    index = raw[len(raw) - 4 - 16 * count : len(raw) - 4]
    k = (chunk[0] * grid[1] + chunk[1]) * grid[2] + chunk[2]
    offset = int.from_bytes(index[16 * k : 16 * k + 8], "little")
    length = int.from_bytes(index[16 * k + 8 : 16 * k + 16], "little")
    assert length > 8, "the chunk is stored"
    raw[offset : offset + length] = b"\xff" * length
    shard.write_bytes(bytes(raw))
