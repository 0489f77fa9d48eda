"""Prometheus metrics, one registry per app (no module globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class _BrickCacheCollector(Collector):
    """Reads the brick cache's plain counters at scrape time (the hot path
    increments ints, not locked prometheus counters)."""

    def __init__(self, read: Callable[[], tuple[int, int, int, int, int]]) -> None:
        self.read = read

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        hits, misses, size, entries, budget = self.read()
        yield CounterMetricFamily("collab_brick_cache_hits", "Brick cache hits", value=hits)
        yield CounterMetricFamily("collab_brick_cache_misses", "Brick cache misses", value=misses)
        yield GaugeMetricFamily(
            "collab_brick_cache_bytes", "Bytes held by the brick cache", value=size
        )
        yield GaugeMetricFamily(
            "collab_brick_cache_entries", "Bricks held by the cache", value=entries
        )
        yield GaugeMetricFamily(
            "collab_brick_cache_budget_bytes", "Brick cache budget", value=budget
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "collab_connections", "Open sync WebSocket connections", registry=r
        )
        self.rooms = Gauge("collab_rooms", "Rooms loaded in memory", registry=r)
        self.leases_held = Gauge(
            "collab_room_leases_held",
            "Annotations this instance owns (holds the lease of)",
            registry=r,
        )
        self.lease_changes = Counter(
            "collab_lease_changes",
            "Annotation leases taken by this instance (first opens and takeovers)",
            registry=r,
        )
        self.fanout_lag = Histogram(
            "collab_fanout_lag_seconds",
            "From the owner's commit of a version to a mirror here hearing of it",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.updates = Counter(
            "collab_updates", "Updates accepted (per second: rate())", registry=r
        )
        self.committed = Counter(
            "collab_committed_updates", "Updates durably committed", registry=r
        )
        self.commit_seconds = Histogram(
            "collab_commit_seconds",
            "Group-commit transaction latency",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "collab_commit_batch_size",
            "Updates per group-commit transaction",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
            registry=r,
        )
        self.refused_records = Counter(
            "collab_refused_records",
            "Records the database refused (their rooms were reloaded)",
            registry=r,
        )
        self.persistence_failing = Gauge(
            "collab_persistence_failing",
            "1 while the committer cannot write (cause on /healthz)",
            registry=r,
        )
        self.bytes_in = Counter(
            "collab_ws_bytes_in", "WebSocket payload bytes received", registry=r
        )
        self.bytes_out = Counter("collab_ws_bytes_out", "WebSocket payload bytes sent", registry=r)
        self.snapshots_pending = Gauge(
            "collab_snapshots_pending",
            "Documents with a snapshot waiting to be written",
            registry=r,
        )
        self.refused = Counter(
            "collab_ws_refused", "Sync sockets closed for bad input or access", ["code"], registry=r
        )

        self.bricks_pushed = Counter(
            "collab_bricks_pushed",
            "Bricks of annotation layers pushed to viewers when a version changed them",
            registry=r,
        )
        self.bricks_push_stale = Counter(
            "collab_bricks_push_stale",
            "Changed bricks pushed as stale marks (no voxels: the viewer asks again) because "
            "the socket already held its send buffer's worth of pushes",
            registry=r,
        )
        self.bricks_sent = Counter(
            "collab_bricks_sent", "Bricks sent over data sockets and HTTP", ["encoding"], registry=r
        )
        self.data_sockets = Gauge("collab_data_sockets", "Open brick WebSockets", registry=r)
        self.brick_stalls = Counter(
            "collab_brick_stalls",
            "Times a brick socket's send buffer was full and its producers waited for the client",
            registry=r,
        )

    def watch_brick_cache(self, read: Callable[[], tuple[int, int, int, int, int]]) -> None:
        self.registry.register(_BrickCacheCollector(read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
