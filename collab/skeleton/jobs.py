"""CPU-heavy skeleton work, run in a worker process (collab/workers.py).

pycrdt holds the GIL while it encodes, applies or converts, so a million-node
import or export done in the server process would stall every room for tens
of seconds. Here the worker parses an import and writes its update in pieces
(the server applies each while the next is built; all of them land as one
version), or assembles and writes an export from the columns the room's
repair index keeps (collab/skeleton/node_columns.py), which the server then
streams.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from collab.document.kind import Root, new_doc
from collab.skeleton import convert
from collab.skeleton import nml as nmlmod
from collab.skeleton.convert import Existing, ExportSource, ImportResult, assemble
from collab.skeleton.repair import IndexDelta, IndexSource
from collab.skeleton.schema import ROOTS
from collab.workers import no_gc


def build_import(
    path: str, is_zip: bool, existing: Existing, folder: str, max_nml_bytes: int
) -> tuple[ImportResult, int]:
    """Parse the NML at ``path`` whole (an invalid file raises before
    anything is written), then write the update that merges it in pieces to
    ``folder`` (``0.piece``, ``1.piece``, …, each complete once it has its
    name), so the server applies piece k while this builds piece k + 1.
    Returns the counts and the number of pieces."""
    with no_gc():
        with open(path, "rb") as stream:
            parsed = nmlmod.read_zip(stream, max_nml_bytes) if is_zip else nmlmod.read(stream)
        count = 0

        def emit(piece: bytes, delta: IndexDelta) -> None:
            nonlocal count
            part = Path(folder) / f"{count}.part"
            with part.open("wb") as f:
                pickle.dump((piece, delta), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(part, Path(folder) / f"{count}.piece")
            count += 1

        result = convert.build_import_pieces(parsed, existing, emit)
        return result, count


def take_piece(folder: str, k: int) -> tuple[bytes, IndexDelta] | None:
    """Piece ``k`` written by :func:`build_import` (removed once read), or
    None if it is not there yet. Our own file in our own data folder."""
    path = Path(folder) / f"{k}.piece"
    try:
        with path.open("rb") as f:
            piece: tuple[bytes, IndexDelta] = pickle.load(f)
    except FileNotFoundError:
        return None
    path.unlink()
    return piece


def write_export(src: ExportSource, out: str, name: str) -> int:
    """Write the document gathered in ``src`` as NML to ``out``; return its size."""
    with no_gc():
        data = assemble(src, name=name)
        size = 0
        with Path(out).open("w", encoding="utf-8") as f:
            for piece in nmlmod.write(data):
                f.write(piece)
                size += len(piece)
        return size


def index_source(snapshot: bytes | None, updates: list[bytes]) -> IndexSource:
    """The repair index's contents for the document these stored bytes make
    (a large room being loaded: the server builds its own document meanwhile)."""
    with no_gc():
        doc = new_doc([Root(name) for name in ROOTS], snapshot)
        for update in updates:
            doc.apply_update(update)
        return IndexSource.of_doc(doc)
