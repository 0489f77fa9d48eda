"""Bad input on the sync socket: the offender is closed with a documented code,
nothing is stored, and the server and other clients carry on."""

from __future__ import annotations

import datetime as dt

import pytest
import websockets

from collab.sync import messages as m
from tests.conftest import LiveServer
from tests.yclient import YClient, put_node


async def _setup(live: LiveServer) -> tuple[str, int, YClient]:
    _, token = await live.user()
    ann = await live.annotation(token)
    bystander = await YClient(live.sync_url(ann, token=token, acks="1")).connect()
    put_node(bystander, "keep", {"treeId": "t", "position": [1, 1, 1]})
    await bystander.wait(lambda: bystander.saved == 1)
    return token, ann, bystander


async def _still_works(live: LiveServer, token: str, ann: int, bystander: YClient) -> None:
    await _still_works_after(live, token, ann, bystander, versions=2)


async def _still_works_after(
    live: LiveServer, token: str, ann: int, bystander: YClient, versions: int
) -> None:
    """The bystander can still write; a fresh client sees everything; nothing else was stored."""
    put_node(bystander, "after", {"treeId": "t", "position": [2, 2, 2]})
    await bystander.wait(lambda: bystander.saved == versions)
    fresh = await YClient(live.sync_url(ann, token=token)).connect()
    assert set(fresh.map("nodes").keys()) == {"keep", "after"}
    await fresh.close()
    async with live.client(token) as http:
        r = await http.get(f"/api/annotations/{ann}/versions", params={"limit": 1000})
    assert [v["version"] for v in r.json()["versions"]] == list(range(versions, 0, -1))
    await bystander.close()


BAD_FRAMES = {
    "empty": (b"", 4400, "empty frame"),
    "truncated varuint": (b"\x00\x02\xff", 4400, "truncated"),
    "truncated payload": (b"\x00\x02\x10abc", 4400, "truncated payload"),
    "trailing bytes": (m.pack_update(b"\x00\x00") + b"xx", 4400, "trailing"),
    "unknown message type": (b"\x07", 4400, "unknown message type"),
    "unknown sync type": (b"\x00\x09\x00", 4400, "unknown sync"),
    "garbage update": (m.pack_update(b"\x05\xff\xff\xffgarbage"), 4422, "cannot be applied"),
    "bad awareness json": (m.pack_awareness(b"\x01\x05\x01\x03{{{"), 4400, "not JSON"),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
async def test_bad_frame_closes_only_the_offender(live: LiveServer, name: str) -> None:
    frame, code, reason = BAD_FRAMES[name]
    token, ann, bystander = await _setup(live)
    bad = await YClient(live.sync_url(ann, token=token)).connect()
    await bad.send_raw(frame)
    got_code, got_reason = await bad.wait_closed()
    assert got_code == code
    assert reason.lower() in got_reason.lower()
    await _still_works(live, token, ann, bystander)


async def test_text_frame_is_refused(live: LiveServer) -> None:
    token, ann, bystander = await _setup(live)
    bad = await YClient(live.sync_url(ann, token=token)).connect()
    await bad.send_raw("hello")
    assert (await bad.wait_closed())[0] == 4400
    await _still_works(live, token, ann, bystander)


async def test_frame_over_the_size_limit_closes_with_1009(live: LiveServer) -> None:
    token, ann, bystander = await _setup(live)
    bad = await YClient(live.sync_url(ann, token=token)).connect()
    await bad.send_raw(m.pack_update(b"\x00" * (live.settings.max_frame_bytes + 10)))
    assert (await bad.wait_closed(30))[0] == 1009
    await _still_works(live, token, ann, bystander)


async def _refusal(url: str) -> tuple[int, str]:
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code is not None
        return ws.close_code, ws.close_reason or ""


async def test_refusals_use_final_close_codes(live: LiveServer) -> None:
    token, ann, bystander = await _setup(live)
    _, stranger = await live.user("stranger")
    assert (await _refusal(live.sync_url(ann)))[0] == 4401
    assert (await _refusal(live.sync_url(ann, token="clb_nope")))[0] == 4401
    assert (await _refusal(live.sync_url(ann, token=stranger)))[0] == 4403
    assert (await _refusal(live.sync_url(99999, token=token)))[0] == 4404
    assert (await _refusal(live.sync_url(ann, doc="nonsense", token=token)))[0] == 4404
    assert (await _refusal(f"{live.ws_url}/sync/abc/skeleton?token={token}"))[0] == 4400
    # An expired token, and a revoked one.
    async with live.client(token) as http:
        me = (await http.get("/api/users/me")).json()["id"]
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        expired = (await http.post(f"/api/users/{me}/tokens", json={"expires": past})).json()[
            "token"
        ]
        r = await http.post(f"/api/users/{me}/tokens", json={})
        revoked, revoked_id = r.json()["token"], r.json()["id"]
        assert (await http.delete(f"/api/tokens/{revoked_id}")).status_code == 200
    code, reason = await _refusal(live.sync_url(ann, token=expired))
    assert (code, reason) == (4401, "token expired")
    assert await _refusal(live.sync_url(ann, token=revoked)) == (4401, "token revoked")
    await _still_works(live, token, ann, bystander)


async def test_share_link_for_another_annotation_is_4403(live: LiveServer) -> None:
    token, ann, bystander = await _setup(live)
    other = await live.annotation(token, "other")
    async with live.client(token) as http:
        r = await http.post(f"/api/annotations/{other}/links", json={"access": "write"})
        link = r.json()["token"]
    assert (await _refusal(live.sync_url(ann, token=link)))[0] == 4403
    ok = await YClient(live.sync_url(other, token=link, acks="1")).connect()
    put_node(ok, "x", {"treeId": "t", "position": [0, 0, 0]})
    await ok.wait(lambda: ok.saved == 1)
    await ok.close()
    await _still_works(live, token, ann, bystander)
