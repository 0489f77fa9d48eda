"""Every REST endpoint, fuzzed: any body, any path parameter, any query
string gets a 4xx JSON error or a success, never a 5xx; afterwards the
server still saves a bystander's work."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.routing import Route

from collab.app import create_app
from collab.config import Settings
from tests.fuzz.conftest import FUZZ, FUZZ_TIMEOUT, annotation, assert_still_saving, user
from tests.processes import ServerProcess

ROUTES = sorted(
    (method, route.path)
    for route in create_app(Settings()).routes
    if isinstance(route, Route)
    for method in (route.methods or ())
    if method != "HEAD"
)

#: Field names the endpoints read (so bodies reach past the first check).
FIELDS = [
    "name", "dataset", "access", "expires", "version", "doc", "team", "teams", "roles",
    "email", "experiences", "project", "taskType", "position", "experience", "instances",
    "priority", "paused", "expectedMinutes", "description", "modes", "settings", "decision",
    "reason", "user", "url", "role", "domain", "min", "tasks", "token", "open", "layer",
    "count",
]  # fmt: skip

texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\x00", "a\x00b", "skeleton", "segmentation", "read", "write", "1",
                     "accept", "reject", "annotator", "admin", "2026-01-01T00:00:00Z",
                     "../../etc/passwd", "x" * 5000, "\ud7ff\U0010ffff", "Ā,b"]),
)  # fmt: skip
ints = st.one_of(
    st.integers(-3, 5), st.integers(), st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**30])
)
leaves = st.one_of(st.none(), st.booleans(), ints, st.floats(allow_nan=False), texts)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), texts), inner, max_size=4),
    ),
    max_leaves=10,
)
objects = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)
bodies = st.one_of(
    objects.map(lambda o: ("json", o)),
    st.lists(objects, max_size=3).map(lambda o: ("json", o)),
    values.map(lambda o: ("json", o)),
    st.binary(max_size=64).map(lambda b: ("raw", b)),
)
segments = st.one_of(
    st.integers(1, 3).map(str),
    st.integers(1, 3).map(str),
    st.integers(0, 4).map(str),
    st.sampled_from(["skeleton", "segmentation", "color", "1", "2-2-1", "demo", "99999999999999999999", "-1", "%00", "..", "a,b", "%C2%B2"]),
    st.text(min_size=1, max_size=8).map(lambda t: quote(t, safe="")),
)  # fmt: skip
queries = st.dictionaries(
    st.sampled_from(["doc", "limit", "before", "from", "to", "format", "mapping", "project",
                     "x", "y", "z", "min", "max", "a", "b", "version", "speed", "node", "token"]),
    st.one_of(texts, ints.map(str)),
    max_size=3,
)  # fmt: skip


#: A valid body per endpoint; the fuzzer replaces some of its fields with
#: anything, so most requests get past the first check to the database.
TEMPLATES: dict[str, dict[str, Any]] = {
    "/api/annotations": {"name": "a"},
    "/api/annotations/{annotation_id}/links": {"access": "read", "expires": "2030-01-01T00:00:00Z"},
    "/api/annotations/{annotation_id}/grants": {"user": 2, "role": "editor"},
    "/api/annotations/{annotation_id}/comments": {"text": "looks good"},
    "/api/annotations/{annotation_id}/restore": {"version": 1},
    "/api/annotations/{annotation_id}/revert": {"version": 1},
    "/api/annotations/{annotation_id}/review": {"decision": "reject", "reason": "r"},
    "/api/teams": {"name": "team"},
    "/api/users": {"name": "u", "email": "u@lab.org", "roles": ["annotator"], "teams": [1],
                   "experiences": {"synapses": 2}},
    "/api/users/{user_id}": {"name": "u2", "roles": ["annotator"], "teams": [1]},
    "/api/users/{user_id}/tokens": {"label": "laptop", "expires": "2030-01-01T00:00:00Z"},
    "/api/projects": {"name": "p", "team": 1, "priority": 1, "paused": False, "expectedMinutes": 5},
    "/api/projects/{project_id}": {"paused": True, "priority": 3},
    "/api/tasktypes": {"name": "tt", "description": "d", "modes": ["skeleton"], "settings": {}},
    "/api/tasks": {"project": 1, "taskType": 1, "position": [1, 2, 3], "instances": 2,
                   "experience": {"domain": "synapses", "min": 1}},
    "/api/instances/{instance_id}/assign": {"user": 2},
    "/api/instances/{instance_id}/cancel": {"reason": "r"},
    "/api/instances/{instance_id}/reset": {"reason": "r"},
    "/api/datasets": {"name": "d", "url": "d"},
}  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, path: str) -> tuple[str, Any]:
    template = dict(TEMPLATES.get(path, {}))
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from(sorted(template) or FIELDS))
        template[field] = draw(values)
    return ("json", template)


def _fill(path: str, parts: list[str]) -> str:
    it = iter(parts)
    return re.sub(r"\{[^}]+\}", lambda _: next(it, "1"), path)


@pytest.fixture(scope="module")
def caller(server: ServerProcess) -> tuple[str, int]:
    _, token = user(server)
    return token, annotation(server, token)


@pytest.mark.timeout(FUZZ_TIMEOUT)
def test_rest_never_answers_5xx(server: ServerProcess, caller: tuple[str, int]) -> None:
    token, ann = caller
    findings: list[str] = []
    seen: dict[int, int] = {}
    with httpx.Client(base_url=server.url, timeout=30) as http:

        @FUZZ
        @given(
            route=st.sampled_from(ROUTES),
            parts=st.lists(segments, min_size=8, max_size=8),
            query=queries,
            body=st.data(),
            auth=st.sampled_from(["admin", "admin", "user", "none"]),
        )
        def attack(
            route: tuple[str, str],
            parts: list[str],
            query: dict[str, str],
            body: st.DataObject,
            auth: str,
        ) -> None:
            method, path = route
            kind, payload = body.draw(st.one_of(mutated(path), mutated(path), bodies))
            if path.startswith("/api/tokens/") and parts[0].isdigit():
                parts = [str(int(parts[0]) + 1000)]  # never the tokens this run uses
            url = _fill(path, parts)
            headers = {}
            if auth != "none":
                headers = server.headers(None if auth == "admin" else token)
            if kind == "json":
                content = json.dumps(payload).encode()  # big ints and Infinity too
                headers["content-type"] = "application/json"
            else:
                content = payload
            r = http.request(method, url, params=query, content=content, headers=headers)
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
            if r.status_code >= 500:
                findings.append(
                    f"{method} {url} {query} {content[:200]!r} -> {r.status_code} {r.text[:200]}"
                )
            assert r.status_code < 500, findings[-1]
            if r.status_code >= 400:
                error = r.json()["error"]
                assert isinstance(error["code"], str) and isinstance(error["message"], str)

        attack()
    print("statuses", sorted(seen.items()))
    assert_still_saving(server, token, ann)
