"""Where datasets may live: resolving a registration's ``url`` under the roots.

A root is a local folder or a URL prefix (``s3://bucket/em/``, checked at
start by collab/config.py: it names a bucket or host). A relative path is
taken under the first local root. Local paths are resolved with every
symlink followed and must stay inside a local root. A URL must be a root or
lie under one, segment by segment (``s3://bucket/em`` does not cover
``s3://bucket/emx``), and may not hold ``.`` or ``..`` segments, empty
segments, ``?``, ``#``, ``\\`` or control characters: the server fetches
nothing a root does not name. URLs come back without a trailing ``/``, so a
dataset has one spelling.
"""

from __future__ import annotations

import os
from pathlib import Path

from collab.errors import BadRequest, Forbidden, NotFound


def _is_url(text: str) -> bool:
    return "://" in text


def resolve(url: str, roots: tuple[str, ...]) -> str:
    """The location to open for ``url``: an absolute real path or a URL."""
    if not url or "\x00" in url or len(url) > 4096:
        raise BadRequest("'url' must be a path or URL of at most 4096 characters")
    if _is_url(url) and not url.startswith("file://"):
        url = url.rstrip("/")
        if any(c in url for c in "?#\\") or any(ord(c) < 0x20 or c == "\x7f" for c in url):
            raise BadRequest(
                f"{url!r}: a dataset URL holds no '?', '#', '\\' or control characters"
            )
        scheme_rest = url.split("://", 1)[1]
        if any(part in ("..", ".", "") for part in scheme_rest.split("/")):
            raise Forbidden(f"{url!r} may not contain '.', '..' or empty segments")
        for root in roots:
            if not _is_url(root) or root.startswith("file://"):
                continue
            base = root.rstrip("/")
            if url == base or url.startswith(base + "/"):
                return url
        raise Forbidden(f"{url!r} is not under an allowed dataset root")
    local_roots = [
        Path(r.removeprefix("file://")) for r in roots if not _is_url(r) or r.startswith("file://")
    ]
    raw = Path(url.removeprefix("file://"))
    if not raw.is_absolute():
        if not local_roots:
            raise Forbidden("relative paths need a local dataset root")
        raw = local_roots[0] / raw
    real = Path(os.path.realpath(raw))
    for local in local_roots:
        root_real = Path(os.path.realpath(local))
        if real == root_real or root_real in real.parents:
            if not real.exists():
                raise NotFound(f"no dataset at {url!r}")
            if not real.is_dir():
                raise BadRequest(f"{url!r} is not a folder")
            return str(real)
    raise Forbidden(f"{url!r} resolves outside the allowed dataset roots")
