"""Command-line clients of a running server: ``collab nml import|export``.

They speak the REST API (docs/api.md) with httpx and draw a progress bar on
standard error.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx

CHUNK = 256 * 1024


class Progress:
    """A one-line progress bar on a terminal (plain lines when not a TTY)."""

    def __init__(self, label: str, total: int | None, stream: IO[str] = sys.stderr) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream
        self.started = time.monotonic()
        self._last = 0.0
        self.tty = stream.isatty()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= (0.1 if self.tty else 2.0):
            self._last = now
            self.draw()

    def draw(self, final: bool = False) -> None:
        mb = self.done / 2**20
        rate = mb / max(time.monotonic() - self.started, 1e-6)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"{self.label} [{bar:<30}] {frac * 100:5.1f}% {mb:8.1f} MiB {rate:6.1f} MiB/s"
        else:
            text = f"{self.label} {mb:8.1f} MiB {rate:6.1f} MiB/s"
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + text + end)
        self.stream.flush()

    def close(self) -> None:
        self.draw(final=True)


def _client(server: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server,
        headers={"authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(30, read=600),
    )


def _fail(response: httpx.Response) -> int:
    try:
        error = response.json()["error"]
        print(
            f"collab: {response.status_code} {error['code']}: {error['message']}", file=sys.stderr
        )
    except Exception:
        print(f"collab: HTTP {response.status_code}", file=sys.stderr)
    return 1


def nml_import(server: str, token: str, annotation: int, path: Path) -> int:
    size = path.stat().st_size
    progress = Progress(f"upload {path.name}", size)
    with path.open("rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"

    def body() -> Iterator[bytes]:
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                progress.advance(len(chunk))
                yield chunk

    with _client(server, token) as http:
        response = http.post(
            f"/api/annotations/{annotation}/nml",
            content=body(),
            headers={
                "content-type": "application/zip" if is_zip else "application/xml",
                "content-length": str(size),
            },
        )
    progress.close()
    if response.status_code != 200:
        return _fail(response)
    result = response.json()
    print(
        f"imported {result['trees']} trees, {result['nodes']} nodes as version {result['version']}"
    )
    return 0


def nml_export(server: str, token: str, annotation: int, path: Path, as_zip: bool) -> int:
    progress = Progress(f"download {path.name}", None)
    params = {"format": "zip"} if as_zip else {}
    with (
        _client(server, token) as http,
        http.stream("GET", f"/api/annotations/{annotation}/nml", params=params) as response,
    ):
        if response.status_code != 200:
            response.read()
            return _fail(response)
        tmp = path.with_name(path.name + ".part")
        with tmp.open("wb") as f:
            for chunk in response.iter_bytes(CHUNK):
                f.write(chunk)
                progress.advance(len(chunk))
        tmp.replace(path)
    progress.close()
    print(f"wrote {path}")
    return 0


def token_from(arg: str | None) -> str:
    token = arg or os.environ.get("COLLAB_TOKEN")
    if not token:
        raise SystemExit("collab: a token is required (--token or COLLAB_TOKEN)")
    return token


def _print_dataset(meta: dict[str, object]) -> None:
    layers = meta.get("layers") or []
    print(f"{meta['name']}  voxel size {meta.get('voxelSize')} nm  ({meta.get('url', '')})")
    for layer in layers if isinstance(layers, list) else []:
        box = layer["boundingBox"]
        extra = f"  mappings {', '.join(layer['mappings'])}" if layer.get("mappings") else ""
        print(
            f"  {layer['name']:<16} {layer['category']:<12} {layer['dtype']:<7} "
            f"topLeft {box['topLeft']} size {box['size']}  mags {', '.join(layer['mags'])}{extra}"
        )


def dataset_add(server: str, token: str, name: str, url: str) -> int:
    with _client(server, token) as http:
        response = http.post("/api/datasets", json={"name": name, "url": url})
    if response.status_code != 201:
        return _fail(response)
    _print_dataset(response.json())
    return 0


def dataset_list(server: str, token: str) -> int:
    with _client(server, token) as http:
        response = http.get("/api/datasets")
    if response.status_code != 200:
        return _fail(response)
    for meta in response.json()["datasets"]:
        _print_dataset(meta)
    return 0


def dataset_info(server: str, token: str, name: str) -> int:
    with _client(server, token) as http:
        response = http.get(f"/api/datasets/{name}")
    if response.status_code != 200:
        return _fail(response)
    _print_dataset(response.json())
    return 0


def _nml_position(path: Path) -> list[int]:
    """Where a task built from this NML starts: its editPosition, else its first node."""
    from collab.config import Settings
    from collab.skeleton import nml as nmlmod

    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        parsed = nmlmod.read_zip(data, Settings().max_body_bytes)
    else:
        parsed = nmlmod.read(data)
    if parsed.edit_position is not None:
        return [max(0, round(v)) for v in parsed.edit_position[:3]]
    for tree in parsed.trees:
        for node in tree.nodes:
            return [max(0, round(node.x)), max(0, round(node.y)), max(0, round(node.z))]
    return [0, 0, 0]


def task_create(
    server: str,
    token: str,
    files: list[Path],
    project: int | None,
    task_type: int | None,
    dataset: str | None,
    instances: int,
    experience: str | None,
) -> int:
    """Create tasks from one CSV or JSON file (one all-or-nothing request), or
    from NML files (one task each, its NML as the base annotation)."""
    if len(files) == 1 and files[0].suffix.lower() in (".csv", ".json"):
        path = files[0]
        size = path.stat().st_size
        progress = Progress(f"upload {path.name}", size)

        def body() -> Iterator[bytes]:
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    progress.advance(len(chunk))
                    yield chunk

        kind = "text/csv" if path.suffix.lower() == ".csv" else "application/json"
        with _client(server, token) as http:
            response = http.post(
                "/api/tasks",
                content=body(),
                headers={"content-type": kind, "content-length": str(size)},
            )
        progress.close()
        if response.status_code != 201:
            return _fail(response)
        print(f"created {len(response.json()['ids'])} tasks")
        return 0
    if project is None or task_type is None:
        print("collab: --project and --task-type are needed with NML files", file=sys.stderr)
        return 2
    exp = None
    if experience:
        domain, _, level = experience.partition(":")
        exp = {"domain": domain, "min": int(level or 0)}
    progress = Progress("NML bases", sum(p.stat().st_size for p in files))
    tasks = []
    with _client(server, token) as http:
        for path in files:
            r = http.post(
                "/api/annotations",
                json={"name": f"base: {path.stem}", **({"dataset": dataset} if dataset else {})},
            )
            if r.status_code != 201:
                return _fail(r)
            base = r.json()["id"]
            data = path.read_bytes()
            kind = "application/zip" if data[:4] == b"PK\x03\x04" else "application/xml"
            r = http.post(
                f"/api/annotations/{base}/nml", content=data, headers={"content-type": kind}
            )
            if r.status_code != 200:
                print(f"collab: {path}: ", file=sys.stderr, end="")
                return _fail(r)
            progress.advance(len(data))
            task: dict[str, object] = {
                "project": project,
                "taskType": task_type,
                "position": _nml_position(path),
                "baseAnnotation": base,
                "instances": instances,
            }
            if dataset:
                task["dataset"] = dataset
            if exp:
                task["experience"] = exp
            tasks.append(task)
        progress.close()
        r = http.post("/api/tasks", json=tasks)
    if r.status_code != 201:
        return _fail(r)
    print(f"created {len(r.json()['ids'])} tasks from {len(files)} NML files")
    return 0
