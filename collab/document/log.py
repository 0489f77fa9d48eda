"""The operation log's shared types: which document (:class:`RoomKey`) and
one row of its log (:class:`UpdateRecord`).

They sit below both collab/sync/ (rooms build records) and collab/store/
(the committer writes them), so the store imports nothing from the rooms.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoomKey:
    """One document of one annotation: ``doc`` names its kind."""

    annotation_id: int
    doc: str

    def __str__(self) -> str:
        return f"{self.annotation_id}/{self.doc}"


@dataclass(slots=True)
class UpdateRecord:
    """One row of the operation log."""

    key: RoomKey
    version: int
    author_id: int | None
    created_at: float  # seconds since the epoch
    summary: bytes  # JSON
    data: bytes
    snapshot_due: bool = False  # a snapshot of ``version`` is to be written once it is durable
    #: The forwarded updates (room inbox ids, with the process that sent
    #: them) this version applies: deleted from the inbox in its commit.
    inbox: tuple[tuple[str, int], ...] = ()
