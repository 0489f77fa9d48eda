"""What the deployment files must agree with, read from the code itself."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.routing import Route, WebSocketRoute

from collab.config import Settings
from collab.http import ops
from collab.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

#: Not collab's: uvicorn reads it from the environment (docs/config.md,
#: "Behind a reverse proxy").
PROXY_VARIABLES = frozenset({"FORWARDED_ALLOW_IPS"})

#: The several-instances metrics: the example alert rules must watch each.
CLUSTER_METRICS = {
    "collab_room_leases_held": "gauge",
    "collab_lease_changes": "counter",
    "collab_fanout_lag_seconds": "histogram",
}


class _Recording(dict[str, str]):
    """An environment that remembers every name it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.append(key)
        return default


@functools.cache
def setting_names() -> frozenset[str]:
    """Every environment variable ``Settings.from_env`` reads."""
    env = _Recording()
    Settings.from_env(env)
    assert env.asked, "Settings.from_env read nothing through env.get"
    return frozenset(env.asked)


def server_port() -> int:
    return Settings().port


def health_path() -> str:
    (path,) = [r.path for r in ops.routes if isinstance(r, Route) and r.endpoint is ops.healthz]
    return path


@functools.cache
def app_routes() -> tuple[Any, ...]:
    from collab.app import create_app  # builds the routes; starts nothing

    return tuple(create_app(Settings()).routes)


def websocket_paths() -> list[str]:
    """The WebSocket routes, e.g. ``/sync/{annotation_id}/{doc}``."""
    return [r.path for r in app_routes() if isinstance(r, WebSocketRoute)]


def example_path(template: str, annotation: int = 12) -> str:
    """A concrete path for a route template: ids become numbers, names words."""
    return re.sub(
        r"\{(\w+)\}",
        lambda m: str(annotation) if m[1].endswith("_id") else f"x{m[1]}",
        template,
    )


@functools.cache
def metric_families() -> dict[str, str]:
    """Name → type of every metric the server exposes (counters without ``_total``)."""
    metrics = Metrics()
    metrics.watch_brick_cache(lambda: (0, 0, 0, 0, 0))
    return {family.name: family.type for family in metrics.registry.collect()}


def exposed_names(families: dict[str, str]) -> set[str]:
    """The sample names Prometheus sees for these families."""
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
    }
    return {name + s for name, kind in families.items() for s in suffixes.get(kind, ("",))}


def assignments(text: str) -> Iterator[tuple[str, str, bool]]:
    """``NAME=value`` lines of an env file: (name, value, commented out)."""
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            yield match[2], match[3], match[1] is not None
