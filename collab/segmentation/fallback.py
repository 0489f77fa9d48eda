"""Where an annotation's volume layer has written nothing, its voxels are
its fallback's: the segmentation layer of the annotation's dataset
(WEBKNOSSOS's fallback layer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from collab.store import identity
from collab.store.database import Database
from collab.volume import encoding as enc
from collab.volume.mags import parse_mag
from collab.volume.service import Volumes


class DatasetFallback:
    """Reads fallback bricks through the dataset service (its brick cache)."""

    def __init__(self, pool: Database, volumes: Volumes) -> None:
        self._pool = pool
        self._volumes = volumes
        self._datasets: dict[int, str | None] = {}  # annotation → dataset (fixed at creation)

    async def __call__(
        self, annotation_id: int, layer: str, mag: str, brick: tuple[int, int, int]
    ) -> np.ndarray | None:
        name = self._datasets.get(annotation_id, "")
        if name == "":
            async with self._pool.acquire() as conn:
                found: Any = (await identity.get_annotation(conn, annotation_id)).get("dataset")
            name = found if isinstance(found, str) else None
            if len(self._datasets) > 10_000:
                self._datasets.clear()
            self._datasets[annotation_id] = name
        if name is None:
            return None
        dataset = await self._volumes.dataset(name)
        source = dataset.layers.get(layer)
        if source is None or source.spec.category != "segmentation":
            return None  # only a segmentation layer falls through (never the EM)
        parsed = parse_mag(mag)
        if parsed not in source.sources:
            return None
        result = await self._volumes.brick(dataset, source, parsed, brick, enc.RAW)
        if result.payload is None:
            return None
        return enc.from_raw(result.payload, source.dtype)
