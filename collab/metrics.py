"""Prometheus metrics, one registry per app (no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "collab_connections", "Open sync WebSocket connections", registry=r
        )
        self.rooms = Gauge("collab_rooms", "Rooms loaded in memory", registry=r)
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
