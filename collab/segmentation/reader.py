"""The bricks of an annotation's volume layer for the brick socket
(collab/http/data_socket.py, ``LayerReader``): what its ops wrote over its
fallback, at the newest version or at a fixed one."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from collab.segmentation.materialise import LayerInfo
from collab.segmentation.voxels import VoxelReads
from collab.volume import encoding as enc
from collab.volume.cache import Brick
from collab.volume.mags import Mag


@dataclass(frozen=True)
class AnnotationLayerReader:
    #: The materialiser's reads (its failures: Unavailable).
    voxels: VoxelReads
    annotation_id: int
    layer: str
    info: LayerInfo
    #: A fixed version to show, or None: the newest (and pushes follow).
    version: int | None

    @property
    def label(self) -> str:
        return f"annotation {self.annotation_id}/{self.layer}"

    @property
    def name(self) -> str:
        return self.layer

    @property
    def mags(self) -> Collection[Mag]:
        return self.info.mags

    @property
    def mappings(self) -> Collection[str]:
        return ()  # an agglomerate mapping of annotation layers: the proofreading issue

    @property
    def dtype_code(self) -> int:
        return enc.DTYPE_CODES[self.info.dtype.name]

    def cached(
        self, mag: Mag, b: tuple[int, int, int], encoding: int, mapping: str | None
    ) -> Brick | None:
        return None  # every read asks PostgreSQL: bricks change with every version

    async def read(
        self, mag: Mag, bricks: list[tuple[int, int, int]], encoding: int, mapping: str | None
    ) -> list[Brick | BaseException]:
        dtype = self.dtype_code
        inside = [b for b in bricks if min(b) >= 0]
        try:
            found = await self.voxels.read_encoded(
                self.annotation_id, self.layer, self.info, str(mag), inside, self.version, encoding
            )
        except Exception as exc:  # a failed read fails its bricks, not the socket
            if len(inside) <= 1:
                return [exc for _ in bricks]
            # Each alone: a brick that cannot be read fails only itself.
            out: list[Brick | BaseException] = []
            for b in bricks:
                out.extend(await self.read(mag, [b], encoding, mapping))
            return out
        return [Brick(found.get(b), encoding, dtype, "") for b in bricks]
