"""Settings, read once into a frozen object.

Every setting has a default and a reason. Environment variables are read by
:meth:`Settings.from_env`; command-line flags override them (see ``cli.py``).
``docs/config.md`` lists them all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from collab.errors import ConfigError
from collab.limits import LimitRates, Rate


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _rate(env: Mapping[str, str], name: str, default: Rate) -> Rate:
    raw = env.get(name)
    return default if raw is None or raw == "" else Rate.parse(name, raw)


#: Rate limits (collab/limits.py), each "per second : at once". Sized so that
#: a lab of 100 people behind one NAT address, each with a few tabs open and
#: tracing with awareness at 30 Hz, stays far below them, and a reconnect
#: storm after a server restart (every client at once) passes; one client
#: flooding frames or opening sockets in a loop meets them within a second.
DEFAULT_LIMITS = LimitRates(
    connect_ip=Rate(50, 1000),
    connect_token=Rate(10, 200),
    messages_ip=Rate(10_000, 100_000),
    messages_token=Rate(2_000, 20_000),
    requests_ip=Rate(500, 5_000),
    requests_token=Rate(200, 2_000),
)


#: A URL scheme (RFC 3986): what may stand before ``://`` in a dataset root.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def parse_roots(raw: str) -> tuple[str, ...]:
    """``COLLAB_DATASET_ROOTS``: folders and URL prefixes separated by ``:``.

    A ``:`` that starts ``://`` belongs to a URL (``s3://bucket/em``), not
    to the list. A URL root must name a bucket or host: ``s3://`` alone
    would let a registration reach any bucket the credentials open.
    """
    parts = raw.split(":")
    roots: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if i + 1 < len(parts) and parts[i + 1].startswith("//") and _SCHEME.fullmatch(part):
            part = f"{part}:{parts[i + 1]}"
            i += 1
            # A port: ``http://host:9000/em``.
            host_only = "/" not in part[part.index("://") + 3 :]
            if host_only and i + 1 < len(parts) and re.fullmatch(r"\d+(/.*)?", parts[i + 1]):
                part = f"{part}:{parts[i + 1]}"
                i += 1
        i += 1
        if part:
            roots.append(check_root(part))
    return tuple(roots)


def check_root(root: str) -> str:
    """A dataset root as given, once it is a folder or a URL naming a bucket or host."""
    if "://" not in root or root.startswith("file://"):
        return root
    scheme, _, rest = root.partition("://")
    if not _SCHEME.fullmatch(scheme):
        raise ConfigError(f"COLLAB_DATASET_ROOTS: {root!r} has no valid URL scheme")
    bucket = rest.split("/", 1)[0]
    segments = rest.split("/")
    if not bucket or any(c in root for c in "?#\\") or any(p in (".", "..") for p in segments):
        raise ConfigError(
            f"COLLAB_DATASET_ROOTS: {root!r} must name a bucket or host (a URL root "
            "opens everything under it) and hold no '.' or '..' segment, '?', '#' or '\\'"
        )
    return root


@dataclass(frozen=True, slots=True)
class ObjectStorage:
    """How ``s3://`` dataset URLs are reached (collab/volume/storage.py).

    Read once at start from ``COLLAB_S3_*`` and the standard ``AWS_*``
    variables. The secrets are kept out of ``repr`` (settings may be
    logged). A field left ``None`` falls to obstore's own chain: the same
    ``AWS_*`` variables, then web identity (EKS), the ECS task role and
    EC2 instance metadata, whose temporary credentials it renews itself.
    """

    #: An S3-compatible server (MinIO, Ceph, moto): ``http(s)://host:port``.
    #: ``None``: ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else AWS itself.
    endpoint_url: str | None = None
    #: ``AWS_REGION`` / ``AWS_DEFAULT_REGION``; S3-compatible servers mostly ignore it.
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    #: Unsigned requests, for public buckets (``COLLAB_S3_ANONYMOUS=1``).
    anonymous: bool = False
    #: Longest one request to the store may take, seconds. A brick is a
    #: 32 KiB range: far below it; a mapping table may be hundreds of MB.
    timeout_seconds: float = 30.0
    #: Longest the connection to the store may take, seconds: an unreachable
    #: store answers 503 after this (times the tries), not after minutes.
    connect_timeout_seconds: float = 5.0
    #: Tries after a failed request (connection errors, 5xx, timeouts), with
    #: exponential backoff from 100 ms; obstore's default of 10 tries over 3
    #: minutes would hold a viewer's request that long when the store is down.
    retries: int = 2

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ObjectStorage:
        endpoint = (
            env.get("COLLAB_S3_ENDPOINT_URL")
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
            or None
        )
        if endpoint is not None and not re.match(r"https?://[^/?#\s]+/?$", endpoint):
            raise ConfigError(
                f"COLLAB_S3_ENDPOINT_URL must be http(s)://host[:port], got {endpoint!r}"
            )
        default = cls()
        anonymous = (env.get("COLLAB_S3_ANONYMOUS") or env.get("AWS_SKIP_SIGNATURE") or "").lower()
        key = env.get("AWS_ACCESS_KEY_ID") or None
        secret = env.get("AWS_SECRET_ACCESS_KEY") or None
        if (key is None) != (secret is None):
            raise ConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together")
        return cls(
            endpoint_url=endpoint.rstrip("/") if endpoint else None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            access_key_id=key,
            secret_access_key=secret,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
            anonymous=anonymous in ("1", "true", "yes"),
            timeout_seconds=_float(env, "COLLAB_S3_TIMEOUT_SECONDS", default.timeout_seconds, 0.1),
            connect_timeout_seconds=_float(
                env, "COLLAB_S3_CONNECT_TIMEOUT_SECONDS", default.connect_timeout_seconds, 0.1
            ),
            retries=_int(env, "COLLAB_S3_RETRIES", default.retries, 0),
        )


#: The numeric settings read from ``COLLAB_<NAME>``, with the least value each takes.
_MINIMUMS: dict[str, Any] = {
    "max_frame_bytes": 1024,
    "max_body_bytes": 1024,
    "snapshot_every": 1,
    "room_idle_seconds": 0.0,
    "commit_batch_max": 1,
    "commit_queue_max": 1,
    "pool_max": 2,
    "send_queue_max": 16,
    "send_queue_bytes": 64 * 1024,
    "replay_max_gap_seconds": 0.0,
    "gc_young_threshold": 0,
    "gc_full_every_seconds": 1.0,
    "workers": 1,
    "idle_seconds": 1.0,
    "brick_cache_bytes": 0,
    "brick_batch_max": 1,
    "brick_pending_max": 1,
    "brick_send_buffer_bytes": 64 * 1024,
    "brick_frame_bytes": 64 * 1024,
    "auth_cache_seconds": 0.0,
    "max_document_bytes": 0,
    "repair_merge_max_nodes": 0,
    "max_volume_bytes": 1024,
    "max_volume_bricks": 1,
    "agglomerate_graph_bytes": 0,
    "agglomerate_max_edges": 1,
    "lease_seconds": 0.3,
}


@dataclass(frozen=True, slots=True)
class Settings:
    #: Where datasets, volume layers and the embedded database live.
    data_dir: Path = Path("./collab-data")
    #: An external PostgreSQL; ``None`` starts the embedded one in ``<data_dir>/postgres``.
    database_url: str | None = None
    #: Folders and URL prefixes under which datasets may be registered
    #: (collab/volume/roots.py): nothing outside them is ever read.
    dataset_roots: tuple[str, ...] = ()
    #: Endpoint, credentials and timeouts for ``s3://`` datasets.
    object_storage: ObjectStorage = ObjectStorage()
    #: Token of the bootstrap admin; ``None`` generates one once and prints it.
    admin_token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: Where other instances reach this one (REST writes for annotations it
    #: owns are passed on there); default ``http://<host>:<port>``, the
    #: machine's name for a wildcard host. Must be unique among live
    #: instances: a process starting at the url of a dead one takes its
    #: annotations at once.
    instance_url: str | None = None
    #: Seconds an instance owns an annotation without renewing its lease
    #: (renewed every sixth of it). When an instance dies, another takes
    #: its annotations within about 7/6 of this; an event loop stalled
    #: longer loses them (its clients reconnect).
    lease_seconds: float = 3.0
    #: Largest WebSocket frame accepted; bigger ones close the socket (1009).
    #: 16 MiB fits an NML-sized update while bounding per-connection memory.
    max_frame_bytes: int = 16 * 1024 * 1024
    #: Largest REST request body.
    max_body_bytes: int = 256 * 1024 * 1024
    #: A snapshot (merged state) is written every this many versions, so loading
    #: a room costs one snapshot plus at most this many updates.
    snapshot_every: int = 500
    #: Seconds a room stays loaded after its last client left (reconnects are cheap).
    room_idle_seconds: float = 30.0
    #: Most updates written in one group-commit transaction.
    commit_batch_max: int = 5000
    #: Updates waiting for commit before writers are slowed down (backpressure).
    commit_queue_max: int = 200_000
    #: asyncpg pool size. Writes go through one committer connection; the rest
    #: serve REST reads and room loads.
    pool_max: int = 10
    #: Messages drained from one socket before yielding to the event loop
    #: (field notes: one flooding connection must not starve the committer).
    receive_yield_every: int = 32
    #: Outgoing frames buffered per connection before it is closed as too slow.
    send_queue_max: int = 4096
    #: Bytes of relayed frames queued for one connection before it is closed
    #: as too slow (1013). Answers to the client's own sync request are not
    #: counted: they are bounded by the document and share the room's bytes.
    send_queue_bytes: int = 64 * 1024 * 1024
    #: Longest pause between two versions during replay at speed 1, seconds.
    replay_max_gap_seconds: float = 2.0
    #: Allocations between young-generation collections; 0 keeps CPython's
    #: defaults. See collab/gc_policy.py for the measurement behind it.
    gc_young_threshold: int = 50_000
    #: Seconds between full garbage collections (never started automatically).
    gc_full_every_seconds: float = 300.0
    #: Worker processes for CPU-heavy jobs (NML import/export); the event loop
    #: never runs them. One leaves a core to the server on a 2-core machine.
    workers: int = 1
    #: Log level of the JSON logs.
    log_level: str = "INFO"
    #: Time tracking: a pause between two updates of one user on one annotation
    #: longer than this is a break and does not count as working time.
    idle_seconds: float = 300.0
    #: Memory for encoded bricks kept ready to send (least recently used out).
    brick_cache_bytes: int = 512 * 1024 * 1024
    #: Most bricks one request frame may ask for.
    brick_batch_max: int = 1024
    #: Bricks a data socket may have requested and not yet received (all requests).
    brick_pending_max: int = 16_384
    #: Encoded bytes waiting to be sent per data socket; reading pauses above it,
    #: so a slow client never makes the server buffer without bound.
    brick_send_buffer_bytes: int = 4 * 1024 * 1024
    #: Largest binary frame of bricks sent at once (bricks ready together share one).
    brick_frame_bytes: int = 512 * 1024
    #: Seconds the HTTP brick endpoint may answer from a remembered token
    #: lookup and dataset permission (collab/auth_cache.py) instead of asking
    #: PostgreSQL per brick: the longest a change made elsewhere (another
    #: instance, SQL) goes unseen; this instance's own changes count at once.
    #: 0 asks the database on every request.
    auth_cache_seconds: float = 1.0
    #: Connection, message and request rates per IP and per token.
    limits: LimitRates = DEFAULT_LIMITS
    #: Stored bytes of one annotation document (its snapshot and the updates
    #: since) past which writes are refused (4413). A million-node skeleton
    #: stores 227 MB (docs/performance.md); 0 turns the cap off.
    max_document_bytes: int = 1024 * 1024 * 1024
    #: Nodes of a skeleton up to which its room keeps, from its first repair
    #: on, the clients' updates merged without the repairs, so that repairs
    #: do not depend on arrival order (docs/schema.md). The copy, made at the
    #: first repair, holds the GIL about 10 µs and keeps 2.4 KiB a node
    #: (measured: 0.2 s and 48 MiB at 20,000 nodes, 0.7-1.2 s and 244 MiB at
    #: 100,000); 0: never.
    repair_merge_max_nodes: int = 20_000
    #: Bytes the volume layers of one uploaded WEBKNOSSOS zip may inflate to
    #: (each data zip and each member, charged at its declared size before
    #: it is inflated; zipfile inflates no member past it): a zip bomb stops
    #: here. Segmentation compresses 10-1000x, so 4 GiB holds far more than
    #: the body limit lets in. It bounds disk and time, not memory: members
    #: are read a chunk or a WKW block at a time.
    max_volume_bytes: int = 4 * 1024 * 1024 * 1024
    #: 32³ bricks of one volume import or export, all layers and mags
    #: together (16,384 bricks is 2^29 voxels); a data zip may hold this
    #: many members plus 1,024. An import's bricks are stored and
    #: materialised in batches (memory does not grow with them), but an
    #: undo that replays an import op holds the op's box of bricks (up to
    #: 128 KiB each for uint32): this bounds it.
    max_volume_bricks: int = 16_384
    #: Memory for agglomerate graphs read from datasets' agglomerate
    #: attachments (least recently used out). A 10,000-supervoxel
    #: agglomerate with 30,000 edges takes 0.8 MB.
    agglomerate_graph_bytes: int = 256 * 1024 * 1024
    #: Most supervoxels, and most edges, of one agglomerate read from a
    #: dataset (more: 413). The WEBKNOSSOS datastore's default limit; a
    #: graph this large is 40 MB in memory and its minimum cut takes seconds.
    agglomerate_max_edges: int = 1_000_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Each numeric setting from ``COLLAB_<NAME>`` (its default written
        once, on the field), each rate from ``COLLAB_LIMIT_<NAME>``."""
        env = os.environ if env is None else env
        defaults: dict[str, Any] = {f.name: f.default for f in fields(cls)}
        numbers: dict[str, Any] = {}
        for name, minimum in _MINIMUMS.items():
            read = _float if isinstance(defaults[name], float) else _int
            numbers[name] = read(env, f"COLLAB_{name.upper()}", defaults[name], minimum)
        limits = LimitRates(
            **{
                f.name: _rate(
                    env, f"COLLAB_LIMIT_{f.name.upper()}", getattr(DEFAULT_LIMITS, f.name)
                )
                for f in fields(LimitRates)
            }
        )
        roots_raw = env.get("COLLAB_DATASET_ROOTS") or ""
        return cls(
            data_dir=Path(env.get("COLLAB_DATA_DIR") or defaults["data_dir"]),
            database_url=env.get("COLLAB_DATABASE_URL") or None,
            dataset_roots=parse_roots(roots_raw),
            object_storage=ObjectStorage.from_env(env),
            admin_token=env.get("COLLAB_ADMIN_TOKEN") or None,
            instance_url=(env.get("COLLAB_INSTANCE_URL") or "").rstrip("/") or None,
            log_level=(env.get("COLLAB_LOG_LEVEL") or defaults["log_level"]).upper(),
            limits=limits,
            **numbers,
        )

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with the non-``None`` values of ``changes`` applied."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def roots(self) -> tuple[str, ...]:
        return self.dataset_roots or (str(self.data_dir / "datasets"),)

    @property
    def postgres_dir(self) -> Path:
        return self.data_dir / "postgres"
