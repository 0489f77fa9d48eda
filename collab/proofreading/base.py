"""The base of an annotation layer's editable mapping: the agglomerate
mapping (with its graph) of the dataset layer it falls back to
(collab/volume/agglomerates.py reads WEBKNOSSOS's agglomerate attachment)."""

from __future__ import annotations

from typing import Any

import numpy as np

from collab.errors import Conflict, NotFound
from collab.store import identity
from collab.store.database import Database
from collab.volume.agglomerates import AgglomerateFile, read_graph
from collab.volume.service import Volumes


class DatasetBase:
    """One dataset mapping with its graph, as :class:`collab.proofreading.
    mapping.Base` reads it (in a thread: graphs are read from storage)."""

    def __init__(self, table: np.ndarray, file: AgglomerateFile, max_edges: int) -> None:
        self.table = table
        self.file = file
        self.max_edges = max_edges
        self.largest = int(table.max()) if len(table) else 0

    def agglomerates_of(self, segments: np.ndarray) -> np.ndarray:
        segments = np.asarray(segments, dtype=np.uint64)
        inside = segments < np.uint64(len(self.table))
        out = np.zeros(len(segments), dtype=np.uint64)
        out[inside] = self.table[segments[inside].astype(np.int64)]
        return out

    def graph(self, agglomerate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            found = read_graph(self.file, agglomerate, self.max_edges)
        except NotFound:
            empty = np.zeros(0, dtype=np.uint64)
            return empty, empty.reshape(0, 2), np.zeros(0, dtype=np.float32)
        return found.segments, found.edges, found.affinities


class BaseOf:
    """Builds the base of a layer entry of an annotation's segmentation."""

    def __init__(self, pool: Database, volumes: Volumes) -> None:
        self._pool = pool
        self._volumes = volumes

    async def __call__(self, annotation_id: int, entry: dict[str, Any]) -> DatasetBase:
        fallback, active = entry.get("fallback"), entry.get("activeMapping")
        if not isinstance(fallback, str) or not isinstance(active, str):
            raise Conflict("proofreading needs a layer with a fallback layer and an active mapping")
        async with self._pool.acquire() as db:
            annotation = await identity.get_annotation(db, annotation_id)
        name = annotation.get("dataset")
        if not isinstance(name, str):
            raise Conflict("the annotation has no dataset: nothing to proofread")
        dataset = await self._volumes.dataset(name)
        layer = dataset.layers.get(fallback)
        if layer is None:
            raise NotFound(f"dataset {name!r} has no layer {fallback!r}")
        file = layer.agglomerate_file(active)
        table = await layer.mapping(active)
        return DatasetBase(table, file, self._volumes.settings.agglomerate_max_edges)
