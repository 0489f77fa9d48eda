"""REST: identity, annotations, grants, links, permissions and bad input."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer


async def test_health_metrics_openapi(live: LiveServer) -> None:
    async with live.client() as http:
        assert (await http.get("/healthz")).json()["status"] == "ok"
        text = (await http.get("/metrics")).text
        for name in (
            "collab_connections",
            "collab_rooms",
            "collab_updates_total",
            "collab_commit_seconds_bucket",
            "collab_ws_bytes_in_total",
            "collab_ws_bytes_out_total",
        ):
            assert name in text
        spec = (await http.get("/api/openapi.json")).json()
        assert "/api/annotations/{annotation_id}/revert" in spec["paths"]


async def test_annotation_lifecycle_and_grants(live: LiveServer) -> None:
    owner_id, owner = await live.user("owner")
    editor_id, editor = await live.user("editor")
    viewer_id, viewer = await live.user("viewer")
    _, stranger = await live.user("stranger")
    ann = await live.annotation(owner, "cortex")
    async with live.client(owner) as http:
        info = (await http.get(f"/api/annotations/{ann}")).json()
        assert info["name"] == "cortex" and info["owner"] == owner_id and info["access"] == "owner"
        assert info["versions"] == {"skeleton": 0, "segmentation": 0}
        for uid, role in ((editor_id, "editor"), (viewer_id, "viewer")):
            r = await http.post(f"/api/annotations/{ann}/grants", json={"user": uid, "role": role})
            assert r.status_code == 201
        listed = (await http.get("/api/annotations")).json()["annotations"]
        assert [a["id"] for a in listed] == [ann]
    async with live.client(editor) as http:
        assert (await http.get(f"/api/annotations/{ann}")).json()["access"] == "write"
        # Editors may not grant, and may share only for reading.
        r = await http.post(
            f"/api/annotations/{ann}/grants", json={"user": viewer_id, "role": "editor"}
        )
        assert r.status_code == 403
        assert (
            await http.post(f"/api/annotations/{ann}/links", json={"access": "write"})
        ).status_code == 403
        assert (
            await http.post(f"/api/annotations/{ann}/links", json={"access": "read"})
        ).status_code == 201
    async with live.client(viewer) as http:
        assert (await http.get(f"/api/annotations/{ann}")).json()["access"] == "read"
        assert (
            await http.post(f"/api/annotations/{ann}/restore", json={"version": 0})
        ).status_code == 403
        assert (
            await http.post(f"/api/annotations/{ann}/revert", json={"version": 1})
        ).status_code == 403
        assert (await http.get(f"/api/annotations/{ann}/versions")).status_code == 200
    async with live.client(stranger) as http:
        for path in ("", "/versions", "/versions/0"):
            r = await http.get(f"/api/annotations/{ann}{path}")
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert (await http.get("/api/annotations")).json()["annotations"] == []
        assert (await http.post("/api/users", json={"name": "x"})).status_code == 403
    async with live.client(owner) as http:
        assert (await http.delete(f"/api/annotations/{ann}/grants/{viewer_id}")).status_code == 200
    async with live.client(viewer) as http:
        assert (await http.get(f"/api/annotations/{ann}")).status_code == 403


async def test_share_links_are_scoped_to_one_annotation(live: LiveServer) -> None:
    _, owner = await live.user("owner")
    ann = await live.annotation(owner)
    other = await live.annotation(owner, "other")
    async with live.client(owner) as http:
        r = await http.post(
            f"/api/annotations/{ann}/links",
            json={"access": "read", "expires": "2099-01-01T00:00:00Z"},
        )
        assert r.status_code == 201
        link = r.json()["token"]
        assert r.json()["expires"].startswith("2099")
    async with live.client(link) as http:
        assert (await http.get(f"/api/annotations/{ann}")).json()["access"] == "read"
        assert (await http.get(f"/api/annotations/{other}")).status_code == 403
        assert (await http.post("/api/annotations", json={"name": "x"})).status_code == 403
        assert (await http.get("/api/annotations")).status_code == 403


async def test_tokens_are_stored_hashed(live: LiveServer) -> None:
    _, token = await live.user()
    async with live.services.pool.acquire() as db:
        rows = await db.fetch("SELECT hash FROM tokens")
    assert all(len(bytes(r["hash"])) == 32 for r in rows)
    assert all(token.encode() not in bytes(r["hash"]) for r in rows)


BAD = [
    ("POST", "/api/annotations", b"not json", 400, "invalid_json"),
    ("POST", "/api/annotations", b"[1, 2]", 400, "invalid_json"),
    ("POST", "/api/annotations", b"{}", 400, "invalid_json"),
    ("POST", "/api/annotations", b'{"name": 7}', 400, "invalid_json"),
    ("POST", "/api/annotations", b'{"name": "' + b"x" * 600 + b'"}', 400, "invalid_json"),
    ("GET", "/api/annotations/abc", None, 400, "bad_request"),
    ("GET", "/api/annotations/123456", None, 404, "not_found"),
    ("GET", "/api/annotations?limit=0", None, 400, "bad_request"),
    ("GET", "/api/nothing-here", None, 404, "not_found"),
    ("DELETE", "/api/annotations", None, 405, "method_not_allowed"),
    ("POST", "/api/users", b'{"name": "x", "roles": ["emperor"]}', 400, "invalid_json"),
    ("POST", "/api/users/1/tokens", b'{"expires": "tomorrow"}', 400, "invalid_json"),
    ("POST", "/api/annotations/{ann}/links", b'{"access": "all"}', 400, "invalid_json"),
    (
        "POST",
        "/api/annotations/{ann}/grants",
        b'{"user": 999999, "role": "viewer"}',
        404,
        "not_found",
    ),
    ("POST", "/api/annotations/{ann}/restore", b'{"version": 5}', 404, "not_found"),
    ("POST", "/api/annotations/{ann}/restore", b'{"version": -1}', 400, "invalid_json"),
    ("POST", "/api/annotations/{ann}/revert", b"{}", 400, "invalid_json"),
]


@pytest.mark.parametrize("method,path,body,status,code", BAD)
async def test_bad_requests_get_json_errors(
    live: LiveServer, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    ann = await live.annotation(live.admin_token)
    async with live.client(live.admin_token) as http:
        r = await http.request(method, path.format(ann=ann), content=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["message"]


async def test_missing_and_bad_tokens_are_401(live: LiveServer) -> None:
    async with live.client() as http:
        r = await http.get("/api/annotations")
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    async with live.client("clb_" + "x" * 43) as http:
        assert (await http.get("/api/annotations")).status_code == 401
    async with live.client("x" * 5000) as http:
        assert (await http.get("/api/annotations")).status_code == 401


async def test_oversized_body_is_413(live: LiveServer) -> None:
    async with live.client(live.admin_token) as http:
        r = await http.post("/api/annotations", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


async def test_openapi_lists_every_route(live: LiveServer) -> None:
    from starlette.routing import Route

    async with live.client() as http:
        spec = (await http.get("/api/openapi.json")).json()
    routes = {
        (route.path, method.lower())
        for route in live.server.config.app.routes
        if isinstance(route, Route) and route.path != "/api/openapi.json"
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routes <= documented, routes - documented
