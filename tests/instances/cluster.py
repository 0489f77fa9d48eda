"""Several ``collab serve`` processes over one PostgreSQL, and writers that
know exactly which of their writes are acknowledged (for tests/instances/ and
tests/benchmarks/instances.py).

A writer connects with ``?acks=1&accepted=1`` (docs/protocol.md): each
``accepted`` message names the version that holds one update or step 2 it
sent, in the order sent, so with several writers in one room a write is
acknowledged exactly when a ``saved`` message *of the same connection*
reaches the version that holds it. Versions named on a connection are not
trusted on the next one (an instance that lost its lease could have named a
version another owner then wrote differently): writes still unacknowledged
when a connection ends are covered again by the step 2 of the next one,
which carries everything the server lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from pycrdt import Doc, Map, TransactionEvent

from collab.auth import new_token
from collab.sync import messages as m
from tests.conftest import free_port
from tests.processes import ServerProcess
from tests.yclient import YClient

#: The lease every test instance runs with (``COLLAB_LEASE_SECONDS``, the default).
LEASE_SECONDS = 3.0
#: The issue: when the owner dies, another instance takes over within 5 s.
TAKEOVER_SECONDS = 5.0

#: How a test learns an annotation's owner. Should the lease table or its
#: columns be named otherwise, ``lease_owner`` fails naming the lease tables
#: it finds: change this one line.
LEASE_QUERY = "SELECT owner, url FROM annotation_leases WHERE annotation_id = $1"

#: The skeleton document's top-level maps (the contract's table).
SKELETON_ROOTS = (
    "meta",
    "trees",
    "nodes",
    "edges",
    "comments",
    "branchpoints",
    "groups",
    "boundingBoxes",
)


async def until(
    condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.02
) -> float:
    """Wait for ``condition`` (checked every ``poll`` s) for at most
    ``timeout`` s; return when it held (time.monotonic()), else fail naming
    ``what``."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / poll) + 2):
        if condition():
            return time.monotonic()
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(poll)
    if condition():
        return time.monotonic()
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


async def until_async(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, poll: float = 0.1
) -> None:
    """``until`` for a condition that must await (a database query)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / poll) + 2):
        if await condition():
            return
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(poll)
    if await condition():
        return
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


class Cluster:
    """``size`` instances of ``collab serve`` with one ``COLLAB_DATABASE_URL``
    (and one dataset root), each with a data dir and port of its own."""

    def __init__(
        self, root: Path, database_url: str, size: int, env: dict[str, str] | None = None
    ) -> None:
        self.database_url = database_url
        self.admin_token = new_token()
        datasets = root / "datasets"
        datasets.mkdir(parents=True, exist_ok=True)
        common = {
            "COLLAB_LEASE_SECONDS": f"{LEASE_SECONDS:g}",
            "COLLAB_DATASET_ROOTS": str(datasets),
            **(env or {}),
        }
        # Each instance's database sessions carry its name (asyncpg passes
        # unknown URL parameters on as settings): ``record_version_writers``
        # can tell which instance wrote a version.
        self.app_names = [f"collab-instance-{k}" for k in range(size)]
        ports: list[int] = []
        for _ in range(size * 50):  # bounded: distinct free ports
            if len(ports) == size:
                break
            port = free_port()
            if port not in ports:
                ports.append(port)
        assert len(ports) == size, "no free ports"
        self.instances = [
            ServerProcess(
                root / f"instance{k}",
                port,
                self.admin_token,
                with_application_name(database_url, self.app_names[k]),
                env=common,
            )
            for k, port in enumerate(ports)
        ]
        self.paused: set[int] = set()  # indexes of SIGSTOPped instances

    async def start(self) -> Cluster:
        """All instances at once (each in a thread: ``ServerProcess.start``
        waits for ``/healthz``)."""
        results = await asyncio.gather(
            *(asyncio.to_thread(s.start) for s in self.instances), return_exceptions=True
        )
        failed = [(k, r) for k, r in enumerate(results) if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise AssertionError(
                "instances failed to start: "
                + "; ".join(f"instance {k}: {r!r}" for k, r in failed)
                + "\n"
                + self.tails()
            )
        return self

    async def stop(self) -> None:
        for k in list(self.paused):
            self.resume(k)

        def stop_one(s: ServerProcess) -> None:
            try:
                s.stop(timeout=30)
            except Exception:
                s.kill()

        await asyncio.gather(*(asyncio.to_thread(stop_one, s) for s in self.instances))

    def index(self, instance: ServerProcess) -> int:
        return self.instances.index(instance)

    def pid(self, k: int) -> int:
        proc = self.instances[k].proc
        assert proc is not None
        return proc.pid

    def pause(self, k: int) -> None:
        """SIGSTOP: the process keeps its sockets and its lease row but does nothing."""
        os.kill(self.pid(k), signal.SIGSTOP)
        self.paused.add(k)

    def resume(self, k: int) -> None:
        os.kill(self.pid(k), signal.SIGCONT)
        self.paused.discard(k)

    def serving(self, k: int) -> bool:
        return self.instances[k].alive() and k not in self.paused

    def next_serving(self, after: int) -> int | None:
        """The first serving instance after ``after`` in ring order (``after``
        itself last): where a client of ``after`` goes when its socket drops."""
        n = len(self.instances)
        for step in range(1, n + 1):
            k = (after + step) % n
            if self.serving(k):
                return k
        return None

    def by_url(self, url: str) -> int:
        for k, s in enumerate(self.instances):
            if s.url == url.rstrip("/"):
                return k
        raise AssertionError(
            f"no instance at {url!r} (instances: {[s.url for s in self.instances]})"
        )

    def tails(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- instance {k} ({s.url}) log:\n{s.tail(lines)}"
            for k, s in enumerate(self.instances)
        )

    async def user_and_annotation(self, name: str = "several") -> tuple[str, int]:
        """A writer's token and a new annotation of theirs (made at instance 0)."""
        s = self.instances[0]
        async with httpx.AsyncClient(base_url=s.url, headers=s.headers(), timeout=30) as http:
            r = await http.post("/api/users", json={"name": "writer"})
            assert r.status_code == 201, r.text
            token = r.json()["token"]
            r = await http.post(
                "/api/annotations",
                json={"name": name},
                headers={"authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
            return token, int(r.json()["id"])

    def sync_url(self, k: int, ann: int, token: str, **params: str) -> str:
        query = "&".join(f"{key}={value}" for key, value in {"token": token, **params}.items())
        return f"{self.instances[k].ws_url}/sync/{ann}/skeleton?{query}"


@contextlib.asynccontextmanager
async def running_cluster(
    root: Path, database_url: str, size: int, env: dict[str, str] | None = None
) -> AsyncIterator[Cluster]:
    cluster = Cluster(root, database_url, size, env)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


# --- PostgreSQL, read directly ------------------------------------------------


def with_application_name(database_url: str, name: str) -> str:
    return f"{database_url}{'&' if '?' in database_url else '?'}application_name={name}"


async def record_version_writers(database_url: str) -> None:
    """A trigger noting, for each version committed, the ``application_name``
    of the session that wrote it (rolled back with a refused transaction,
    so only versions that were written are noted). Observation only: what
    the instances do is unchanged."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS test_version_writers (
                annotation_id bigint NOT NULL,
                doc text NOT NULL,
                version integer NOT NULL,
                writer text NOT NULL,
                written_at timestamptz NOT NULL DEFAULT clock_timestamp()
            );
            CREATE OR REPLACE FUNCTION test_note_version_writer() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO test_version_writers (annotation_id, doc, version, writer)
                VALUES (NEW.annotation_id, NEW.doc, NEW.version,
                        current_setting('application_name'));
                RETURN NULL;
            END $$;
            DROP TRIGGER IF EXISTS test_note_version_writer ON doc_updates;
            CREATE TRIGGER test_note_version_writer AFTER INSERT ON doc_updates
                FOR EACH ROW EXECUTE FUNCTION test_note_version_writer();
            """
        )
    finally:
        await conn.close()


async def version_writers(cluster: Cluster, ann: int, doc: str = "skeleton") -> list[int | str]:
    """Which instance wrote each version, oldest first (its index; the
    session's name when it is none of the cluster's)."""
    conn = await asyncpg.connect(cluster.database_url)
    try:
        rows = await conn.fetch(
            "SELECT version, writer FROM test_version_writers WHERE annotation_id = $1 "
            "AND doc = $2 ORDER BY version",
            ann,
            doc,
        )
    finally:
        await conn.close()
    names = {name: k for k, name in enumerate(cluster.app_names)}
    return [names.get(r["writer"], r["writer"]) for r in rows]


def runs(sequence: list[int | str]) -> list[tuple[int | str, int]]:
    """[a, a, b, b, b] -> [(a, 2), (b, 3)]."""
    out: list[tuple[int | str, int]] = []
    for item in sequence:
        if out and out[-1][0] == item:
            out[-1] = (item, out[-1][1] + 1)
        else:
            out.append((item, 1))
    return out


async def lease_owner(database_url: str, ann: int) -> tuple[str, str] | None:
    """(owner, url) of the annotation's lease row, None when there is none.
    Fails clearly when ``LEASE_QUERY`` does not fit the schema."""
    conn = await asyncpg.connect(database_url)
    try:
        try:
            row = await conn.fetchrow(LEASE_QUERY, ann)
        except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError) as e:
            found = await conn.fetch(
                "SELECT table_name, string_agg(column_name, ', ' ORDER BY ordinal_position) AS cols "
                "FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name LIKE '%lease%' GROUP BY table_name"
            )
            tables = "; ".join(f"{r['table_name']}({r['cols']})" for r in found) or "none"
            raise AssertionError(
                f"cannot find an annotation's owner with {LEASE_QUERY!r} ({e}); lease tables "
                f"in the database: {tables}. Fix LEASE_QUERY in tests/instances/cluster.py."
            ) from e
    finally:
        await conn.close()
    return None if row is None else (str(row["owner"]), str(row["url"]))


async def owner_index(cluster: Cluster, ann: int) -> int | None:
    found = await lease_owner(cluster.database_url, ann)
    return None if found is None else cluster.by_url(found[1])


async def wait_owner(
    cluster: Cluster, ann: int, timeout: float = 10.0, other_than: int | None = None
) -> int:
    """The instance that holds the annotation's lease (one other than
    ``other_than``, once it took over)."""
    seen: list[int | None] = [None]

    async def owned() -> bool:
        seen[0] = await owner_index(cluster, ann)
        return seen[0] is not None and seen[0] != other_than

    await until_async(owned, timeout, f"an owner of annotation {ann} other than {other_than}")
    assert seen[0] is not None
    return seen[0]


async def stored_versions(database_url: str, ann: int, doc: str = "skeleton") -> list[int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT version FROM doc_updates WHERE annotation_id = $1 AND doc = $2 ORDER BY version",
            ann,
            doc,
        )
    finally:
        await conn.close()
    return [int(r["version"]) for r in rows]


def assert_numbered_once(versions: list[int]) -> None:
    """Versions 1..N, each once: the primary key rules out duplicates, so a
    version numbered twice shows as a gap (one writer's row refused) or as a
    count that differs from the newest number."""
    assert versions, "no version stored"
    assert len(versions) == len(set(versions)) == versions[-1], (
        f"{len(versions)} rows but newest version {versions[-1]}"
    )
    gaps = sorted(set(range(1, versions[-1] + 1)) - set(versions))
    assert not gaps, f"versions skipped: {gaps[:20]}"


# --- documents ------------------------------------------------------------------


def doc_json(doc: Doc) -> dict[str, Any]:
    """The skeleton document as plain JSON (its top-level maps)."""
    return {name: doc.get(name, type=Map).to_py() for name in SKELETON_ROOTS}


def put_node_in(doc: Doc, node_id: str, tree: str, position: list[int]) -> None:
    """A node, with its tree in the same transaction the first time (the
    server would otherwise repair it: a version of its own)."""
    with doc.transaction():
        trees = doc.get("trees", type=Map)
        if tree not in trees:
            trees[tree] = Map({"name": tree})
        doc.get("nodes", type=Map)[node_id] = {"treeId": tree, "position": position}


async def fresh_view(url: str, expect: Callable[[dict[str, Any]], bool], timeout: float) -> Any:
    """A new client's document once ``expect`` holds for it (or whatever it
    has when ``timeout`` runs out)."""
    client = await YClient(url).connect()
    try:
        with contextlib.suppress(TimeoutError):
            await client.wait(lambda: expect(doc_json(client.doc)), timeout)
        return doc_json(client.doc)
    finally:
        await close_quietly(client)


async def close_quietly(client: YClient, timeout: float = 3.0) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), timeout)


# --- writers with exact acknowledgements -----------------------------------------


class AckClient(YClient):
    """A ``YClient`` of a ``Writer`` (``acks=1&accepted=1``): records which
    version holds each of the writer's writes it sent."""

    def __init__(self, url: str, writer: Writer) -> None:
        self.writer = writer
        self.retired = False
        #: per message taken by the server (update or step 2), in the order
        #: sent: the writer's writes it carries
        self._marks: deque[frozenset[int]] = deque()
        #: write index -> version holding it, named on this connection, not saved yet
        self.unsaved: dict[int, int] = {}
        self.accepted: list[int] = []
        self.unexpected_accepted = 0
        super().__init__(url, writer.doc)

    def _on_local(self, event: TransactionEvent) -> None:
        if self._remote or self.ws is None or self.retired:
            return
        self._marks.append(frozenset({self.writer.current}))
        self._spawn(self._send(m.pack_update(event.update)))

    def _handle(self, frame: bytes) -> None:
        kind = frame[0]
        if kind == m.MessageType.ACCEPTED:
            version = m.parse_accepted(frame)
            self.accepted.append(version)
            if self._marks:
                for i in self._marks.popleft():
                    if i not in self.writer.acked_at:
                        self.unsaved[i] = min(self.unsaved.get(i, version), version)
            else:
                self.unexpected_accepted += 1
            self.writer.observe(self)
            return
        if kind == m.MessageType.SYNC and len(frame) > 1 and frame[1] == m.SyncType.STEP1:
            # Our answer (sent by YClient) carries every write made so far.
            self._marks.append(frozenset(range(self.writer.written)))
        super()._handle(frame)
        if kind == m.MessageType.SAVED:
            self.writer.observe(self)


class Writer:
    """Writes nodes ``<name>-<i>`` into one annotation, on whichever instance
    it is connected to, keeping its document across reconnections."""

    def __init__(self, cluster: Cluster, ann: int, token: str, name: str) -> None:
        self.cluster = cluster
        self.ann = ann
        self.token = token
        self.name = name
        self.tree = f"tree-{name}"
        self.doc: Doc = Doc()
        self.written = 0
        self.current = -1
        self.put_at: list[float] = []
        self.acked_at: dict[int, float] = {}
        self.max_saved = 0  # the highest "saved" any of its connections received
        self.client: AckClient | None = None
        self.clients: list[AckClient] = []
        self.instance: int | None = None
        self.synced_at: list[tuple[int, float]] = []  # (instance, when) per connection
        self.closes: list[tuple[int, str]] = []
        self.failure: str | None = None

    def node(self, i: int) -> str:
        return f"{self.name}-{i}"

    def acked_nodes(self) -> set[str]:
        return {self.node(i) for i in self.acked_at}

    def all_nodes(self) -> set[str]:
        return {self.node(i) for i in range(self.written)}

    def all_acked(self) -> bool:
        return len(self.acked_at) == self.written

    def closed(self) -> bool:
        return self.client is None or self.client.closed is not None

    def url(self, k: int) -> str:
        return self.cluster.sync_url(k, self.ann, self.token, acks="1", accepted="1")

    def observe(self, client: AckClient) -> None:
        """A saved or accepted message arrived on ``client``."""
        now = time.monotonic()
        self.max_saved = max(self.max_saved, client.saved)
        for i, version in list(client.unsaved.items()):
            if version <= client.saved:
                del client.unsaved[i]
                self.acked_at.setdefault(i, now)

    async def connect(self, k: int, timeout: float = 10.0) -> None:
        """A new connection to instance ``k`` with the same document."""
        await self.retire()
        client = AckClient(self.url(k), self)
        self.client, self.instance = client, k
        self.clients.append(client)
        await asyncio.wait_for(client.connect(), timeout)
        self.synced_at.append((k, time.monotonic()))

    async def retire(self) -> None:
        old = self.client
        if old is None:
            return
        old.retired = True
        if old.closed is not None:
            self.closes.append(old.closed)
        await close_quietly(old)

    async def reconnect(self, attempts: int = 20, backoff: float = 0.1) -> bool:
        """To the next serving instance after the current one, retrying
        (bounded) while instances refuse; False when none would take it."""
        last: BaseException | None = None
        for attempt in range(attempts):
            k = self.cluster.next_serving(self.instance if self.instance is not None else -1)
            if k is None:
                break
            try:
                await self.connect(k)
                return True
            except Exception as e:
                last = e
                await asyncio.sleep(backoff * (attempt + 1))  # a client's backoff
        self.failure = f"could not reconnect: {last!r}"
        return False

    def put(self) -> int:
        """One write (no waiting): node ``<name>-<i>``; returns ``i``."""
        i = self.written
        self.current = i
        self.written = i + 1
        self.put_at.append(time.monotonic())
        put_node_in(self.doc, self.node(i), self.tree, [i, len(self.name), 0])
        return i

    async def wait_acked(
        self, indexes: list[int], timeout: float, stop: asyncio.Event | None = None
    ) -> bool:
        """Until every write of ``indexes`` is acknowledged (True) or the
        connection closed or ``stop`` set (False)."""
        client = self.client
        assert client is not None

        def done() -> bool:
            return (
                all(i in self.acked_at for i in indexes)
                or client.closed is not None
                or (stop is not None and stop.is_set())
            )

        await client.wait(done, timeout)
        return all(i in self.acked_at for i in indexes)

    async def write(self, timeout: float = 10.0) -> int:
        """One write, acknowledged (or fail, saying what the connection heard)."""
        i = self.put()
        try:
            acked = await self.wait_acked([i], timeout)
        except TimeoutError:
            acked = False
        if not acked:
            raise AssertionError(f"{self.name}: write {i} not acknowledged; {self.state()}")
        return i

    def state(self) -> str:
        """What the current connection heard, for failure messages."""
        c = self.client
        if c is None:
            return "not connected"
        return (
            f"instance {self.instance}, saved {c.saved}, accepted {c.accepted[-8:]}, "
            f"unsaved {dict(list(c.unsaved.items())[:8])}, {len(c._marks)} messages "
            f"without an accepted, closed {c.closed}, earlier closes {self.closes}"
        )

    async def run(
        self, stop: asyncio.Event, ack_timeout: float = 20.0, max_writes: int = 10_000
    ) -> None:
        """Write, each write once the previous is acknowledged, until ``stop``;
        when the socket drops, reconnect to the next serving instance."""
        for _ in range(max_writes):
            if stop.is_set():
                return
            # After a drop, writes not acknowledged yet go out again in the new step 2.
            if self.closed() and not await self.reconnect():
                return
            pending = [i for i in range(self.written) if i not in self.acked_at]
            if not pending:
                pending = [self.put()]
            try:
                await self.wait_acked(pending, ack_timeout, stop)
            except TimeoutError:
                self.failure = (
                    f"writes {pending} not acknowledged within {ack_timeout} s "
                    f"on instance {self.instance}"
                )
                return

    async def close(self) -> None:
        await self.retire()
        self.client = None


def first_ack_after(writers: list[Writer], moment: float) -> float | None:
    """Seconds from ``moment`` to the first acknowledgement of a write made after it."""
    times = [
        w.acked_at[i] - moment
        for w in writers
        for i, put in enumerate(w.put_at)
        if put >= moment and i in w.acked_at
    ]
    return min(times) if times else None


def acks_after(writers: list[Writer], moment: float) -> int:
    return sum(1 for w in writers for t in w.acked_at.values() if t >= moment)
