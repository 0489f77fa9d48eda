"""CPU-heavy skeleton work, run in a worker process (collab/workers.py).

pycrdt holds the GIL while it encodes, applies or converts, so a million-node
import or export done in the server process would stall every room for tens
of seconds. Here the worker parses and writes the import's update bytes, or assembles
and writes an export from the columns the room's repair index keeps (see
collab/skeleton/node_columns.py); the server applies one update (as if a
client had sent it) or streams one file.
"""

from __future__ import annotations

from pathlib import Path

from collab.skeleton import convert
from collab.skeleton import nml as nmlmod
from collab.skeleton.convert import Existing, ExportSource, ImportResult, assemble
from collab.workers import no_gc


def build_import(path: str, is_zip: bool, existing: Existing) -> tuple[bytes, ImportResult]:
    """Parse the NML at ``path`` and return the update that merges it, and its counts."""
    with no_gc(), open(path, "rb") as stream:
        parsed = nmlmod.read_zip(stream) if is_zip else nmlmod.read(stream)
        return convert.build_import(parsed, existing)


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
