"""The seam for document kinds: a kind that exists only in this test is
handed to a live server the way collab/app.py hands the skeleton and the
segmentation, and it opens, syncs, repairs, is stored, reloads (its index
read in a worker) and has a history, with nothing in collab/sync/ or
collab/store/ knowing it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pycrdt import Doc, Map

from collab.app import KINDS
from collab.config import Settings
from collab.document.content import MISSING
from collab.document.kind import DocumentKind, Kinds, maps, new_doc
from collab.document.log import RoomKey
from collab.errors import NotFound
from collab.store import oplog
from collab.sync.room import Room
from tests.conftest import live_with
from tests.yclient import YClient

NOTES_ROOTS = maps("notes", "meta")
#: Documents whose stored bytes reach this are indexed in a worker (every
#: stored notes document: the test reloads one to see the worker's read).
NOTES_IN_WORKER_BYTES = 1
#: Documents for which the registry asked ``is_large``.
LARGE_ASKED: list[int] = []


def notes_in_worker(snapshot: bytes | None, updates: list[bytes]) -> list[str]:
    """Run in a worker process on the stored bytes: the notes' keys."""
    doc = new_doc(NOTES_ROOTS, snapshot)
    for update in updates:
        doc.apply_update(update)
    return sorted(doc.get("notes", type=Map).keys())


def notes_are_large(doc: Doc) -> bool:
    LARGE_ASKED.append(len(doc.get("notes", type=Map)))
    return False


class NotesRepairer:
    """Keeps one invariant: a note is a string (anything else is deleted)."""

    values_of = ("notes",)

    def __init__(self, doc: Doc, source: list[str] | None) -> None:
        #: What the worker read of the stored bytes (None: read in-process).
        self.from_worker = source
        notes = doc.get("notes", type=Map)
        self.keys = set(notes.keys())
        self.bad = {k for k, v in notes.items() if not isinstance(v, str)}

    def observe(
        self,
        doc: Doc,
        touched: list[tuple[str, ...]],
        values: dict[tuple[str, ...], Any],
        update: bytes,
        repair: bool,
    ) -> None:
        for path in touched:
            if path[0] != "notes" or len(path) != 2:
                continue
            value = values.get(path, MISSING)
            if value is MISSING:
                self.keys.discard(path[1])
            else:
                self.keys.add(path[1])
            if value is MISSING or isinstance(value, str):
                self.bad.discard(path[1])
            else:
                self.bad.add(path[1])

    def absorb(self, delta: Any, update: bytes) -> None:
        pass

    def seen(self, state_vector: bytes) -> bool:
        return False

    def plan(
        self, doc: Doc, touched: list[tuple[str, ...]]
    ) -> tuple[Callable[[Doc], None], dict[str, Any]] | None:
        if not self.bad:
            return None
        bad = sorted(self.bad)

        def edit(d: Doc) -> None:
            notes = d.get("notes", type=Map)
            for key in bad:
                if key in notes:
                    del notes[key]

        return edit, {"dropped": bad}

    def materialised(self) -> NotesRepairer:
        return self


def open_notes(doc: Doc, source: Any, settings: Settings) -> NotesRepairer:
    return NotesRepairer(doc, source)


NOTES = DocumentKind(
    name="notes",
    roots=NOTES_ROOTS,
    repairer=open_notes,
    index_in_worker=notes_in_worker,
    index_in_worker_bytes=NOTES_IN_WORKER_BYTES,
    is_large=notes_are_large,
    modes=("notes",),
)


def test_kinds_parse_and_refuse_what_they_do_not_serve() -> None:
    kinds = Kinds((*KINDS, NOTES))
    assert list(kinds) == ["skeleton", "segmentation", "notes"]
    assert kinds.default.name == "skeleton"
    assert kinds.parse("notes") is NOTES
    try:
        kinds.parse("other")
    except NotFound as exc:
        assert "expected one of skeleton, segmentation, notes" in exc.message
    else:
        raise AssertionError("an unknown kind was accepted")
    try:
        Kinds((NOTES, NOTES))
    except ValueError:
        pass
    else:
        raise AssertionError("a kind was registered twice")


async def test_a_kind_added_by_the_app_opens_syncs_repairs_and_is_stored(
    settings: Settings,
) -> None:
    LARGE_ASKED.clear()
    async with live_with(settings, kinds=(*KINDS, NOTES)) as live:
        _, token = await live.user()
        ann = await live.annotation(token)
        key = RoomKey(ann, "notes")
        a = await YClient(live.sync_url(ann, "notes", token=token, acks="1")).connect()
        b = await YClient(live.sync_url(ann, "notes", token=token)).connect()
        room: Room = live.services.rooms.rooms[key]
        assert room.kind is NOTES
        notes: NotesRepairer = room.materialised()  # type: ignore[assignment]
        assert notes.from_worker is None  # nothing stored yet: read in-process
        assert LARGE_ASKED == [0]

        a.map("notes")["first"] = "hello"
        await a.wait(lambda: a.saved >= 1)
        a.map("notes")["second"] = 42  # breaks the kind's invariant: repaired
        await b.wait(lambda: b.map("notes").to_py() == {"first": "hello"})
        await a.wait(lambda: a.map("notes").to_py() == {"first": "hello"} and a.saved >= 3)
        assert notes.keys == {"first"}

        # The history endpoints take the kind like any other.
        async with live.client(token) as http:
            r = await http.get(f"/api/annotations/{ann}/versions", params={"doc": "notes"})
            assert r.status_code == 200, r.text
            summaries = [v["summary"] for v in r.json()["versions"]]
            assert [v["version"] for v in r.json()["versions"]] == [3, 2, 1]
            assert summaries[0]["repair"] == {"dropped": ["second"]}
            r = await http.get(f"/api/annotations/{ann}/versions/1", params={"doc": "notes"})
            assert r.json()["content"] == {"notes": {"first": "hello"}, "meta": {}}
            r = await http.get(f"/api/annotations/{ann}")
            assert r.json()["versions"] == {"skeleton": 0, "segmentation": 0, "notes": 3}
            r = await http.post(
                f"/api/annotations/{ann}/revert", json={"doc": "notes", "version": 1}
            )
            assert r.status_code == 200, r.text
            assert r.json()["version"] == 4
        await a.wait(lambda: a.map("notes").to_py() == {} and a.saved >= 4)

        async with live.services.pool.acquire() as conn:
            stored = await oplog.load(conn, key)
        assert stored.head == 4
        for client in (a, b):
            await client.close()

        # Idle rooms unload; the next client reopens it from what is stored,
        # its index read from the stored bytes in a worker process.
        rooms = live.services.rooms
        async with asyncio.timeout(10):
            while key in rooms.rooms:
                await asyncio.sleep(0.05)
        c = await YClient(live.sync_url(ann, "notes", token=token)).connect()
        assert c.map("notes").to_py() == {}
        reopened: NotesRepairer = (await rooms.get(key)).materialised()  # type: ignore[assignment]
        assert reopened.from_worker == []  # the worker's read: no notes stored at version 4
        assert LARGE_ASKED == [0, 0]
        c.map("notes")["fourth"] = {"not": "a string"}
        await c.wait(lambda: c.map("notes").to_py() == {} and reopened.keys == set())
        assert rooms.rooms[key].version == 6  # the note, then its repair
        await c.close()
