"""Readers' side of the materialiser: what the HTTP brick and segment
endpoints and the brick socket of an annotation's layer ask of it, with its
failures mapped to the error tree in this one place.

A read of an annotation's voxels needs the materialiser's catch-up (the
newest version) and the rows it wrote. When either fails in a way the error
tree does not name — a table gone or locked away, a stored brick that does
not decompress, a bug — the reader is told the voxels are unavailable for
now: :class:`~collab.errors.Unavailable`, so 503 over HTTP and close 1013 on
a socket, both of which clients retry; never a 500 or a 1011. The log gets
the cause. What the tree does name passes unchanged: the reader's own
mistakes (4xx: no such version, a mag too large to scan, a value the
database refuses) and Unavailable itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np

from collab.errors import CollabError, Unavailable
from collab.segmentation.materialise import LayerInfo, Materialiser
from collab.volume.mags import Mag

log = logging.getLogger("collab.segmentation")

Brick = tuple[int, int, int]


@contextlib.contextmanager
def unavailable_on_failure(annotation_id: int, what: str) -> Iterator[None]:
    """Inside it, an exception other than a reader's mistake (a 4xx of the
    error tree) or Unavailable leaves as Unavailable (logged with its cause)."""
    try:
        yield
    except CollabError as exc:
        if exc.status < 500 or isinstance(exc, Unavailable):
            raise
        raise _unavailable(annotation_id, what, exc) from exc
    except Exception as exc:
        raise _unavailable(annotation_id, what, exc) from exc


def _unavailable(annotation_id: int, what: str, exc: Exception) -> Unavailable:
    log.error(
        "materialised voxels unreadable",
        exc_info=exc,
        extra={"annotation": annotation_id, "reading": what},
    )
    return Unavailable(
        f"the voxels of annotation {annotation_id} cannot be read now ({what}); try again later"
    )


class VoxelReads:
    """The materialiser's read and newest paths, each under
    :func:`unavailable_on_failure`."""

    def __init__(self, materialiser: Materialiser) -> None:
        self.materialiser = materialiser

    async def newest(self, annotation_id: int) -> int:
        """The newest version, materialised (503 after a long backlog too)."""
        with unavailable_on_failure(annotation_id, "newest version"):
            return await self.materialiser.newest(annotation_id)

    async def read_brick(
        self,
        annotation_id: int,
        layer: str,
        info: LayerInfo,
        mag: str,
        brick: Brick,
        version: int | None,
    ) -> np.ndarray:
        with unavailable_on_failure(annotation_id, f"brick {brick} of {layer[:100]!r}"):
            return await self.materialiser.read_brick(
                annotation_id, layer, info, mag, brick, version
            )

    async def read_encoded(
        self,
        annotation_id: int,
        layer: str,
        info: LayerInfo,
        mag: str,
        bricks: list[Brick],
        version: int | None,
        encoding: int,
    ) -> dict[Brick, bytes]:
        with unavailable_on_failure(annotation_id, f"{len(bricks)} bricks of {layer[:100]!r}"):
            return await self.materialiser.read_encoded(
                annotation_id, layer, info, mag, bricks, version, encoding
            )

    async def segment_stats(
        self,
        annotation_id: int,
        layer: str,
        info: LayerInfo,
        mag: Mag,
        segment: int,
        version: int | None,
        fallback_bricks: list[Brick],
    ) -> tuple[int, list[int], list[int]]:
        with unavailable_on_failure(annotation_id, f"segment {segment} of {layer[:100]!r}"):
            return await self.materialiser.segment_stats(
                annotation_id, layer, info, mag, segment, version, fallback_bricks
            )
