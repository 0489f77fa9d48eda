"""The HTTP brick endpoint's remembered permissions (collab/auth_cache.py):
changes made on this instance count from the next request; changes made
elsewhere (here: SQL, as another instance or the command line would) within
``auth_cache_seconds``; one caller's permission never answers for another's."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx
import pytest

from collab.auth import hash_token
from collab.config import Settings
from tests.conftest import LiveServer, live_with, with_settings
from tests.volume.helpers import make_dataset
from tests.work.helpers import make_org

BRICK = "/api/datasets/{}/layers/color/mags/1/bricks/0/0/0"


async def setup(live: LiveServer, teams: list[int] | None = None) -> None:
    make_dataset(Path(live.settings.roots[0]) / "small")
    async with live.client(live.admin_token) as http:
        body = {"name": "small", "url": "small", "teams": teams or []}
        r = await http.post("/api/datasets", json=body)
        assert r.status_code == 201, r.text
        r = await http.post("/api/datasets", json={"name": "other", "url": "small"})
        assert r.status_code == 201, r.text


async def new_token(live: LiveServer, user_id: int, **body: str) -> tuple[int, str]:
    async with live.client(live.admin_token) as http:
        r = await http.post(f"/api/users/{user_id}/tokens", json=body)
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["token"]


async def status(live: LiveServer, token: str, dataset: str = "small") -> int:
    async with live.client(token) as http:
        return (await http.get(BRICK.format(dataset))).status_code


async def refused_within(
    live: LiveServer, token: str, since: float, bound: float, code: int = 401
) -> float:
    """Poll until the brick is refused with ``code``. A request started more
    than ``bound`` seconds after ``since`` must be refused; returns how long
    after ``since`` the first refusal came."""
    async with live.client(token) as http:
        while True:
            started = time.monotonic()
            got = (await http.get(BRICK.format("small"))).status_code
            if got == code:
                return time.monotonic() - since
            assert got == 200, got
            assert started - since <= bound, f"still {got} {started - since:.3f} s after"


async def test_revoked_token_refused_at_once(live: LiveServer) -> None:
    await setup(live)
    user_id, _ = await live.user("ann")
    token_id, token = await new_token(live, user_id)
    assert await status(live, token) == 200
    assert await status(live, token) == 200  # remembered now
    async with live.client(live.admin_token) as http:
        assert (await http.delete(f"/api/tokens/{token_id}")).status_code == 200
    assert await status(live, token) == 401


async def test_revoked_link_refused_at_once(live: LiveServer) -> None:
    await setup(live)
    _, owner = await live.user("owner")
    async with live.client(owner) as http:
        r = await http.post("/api/annotations", json={"name": "a", "dataset": "small"})
        annotation = r.json()["id"]
        r = await http.post(f"/api/annotations/{annotation}/links", json={"access": "read"})
        link_id, link = r.json()["id"], r.json()["token"]
    assert await status(live, link) == 200
    assert await status(live, link, "other") == 403  # its annotation's dataset only
    async with live.client(owner) as http:
        assert (await http.delete(f"/api/tokens/{link_id}")).status_code == 200
    assert await status(live, link) == 401


async def test_team_taken_away_refused_at_once(live: LiveServer) -> None:
    org = await make_org(live)
    await setup(live, teams=[org.team_a])
    assert await status(live, org.annotator.token) == 200
    assert await status(live, org.outsider.token) == 403  # after a team member's 200
    async with live.client(live.admin_token) as http:
        r = await http.patch(f"/api/users/{org.annotator.id}", json={"teams": [org.team_b]})
        assert r.status_code == 200, r.text
    assert await status(live, org.annotator.token) == 403


async def test_one_callers_permission_never_answers_for_another(live: LiveServer) -> None:
    org = await make_org(live)
    await setup(live, teams=[org.team_a])
    for _ in range(3):
        assert await status(live, org.annotator.token) == 200
        assert await status(live, org.outsider.token) == 403
        assert await status(live, "clb_" + "x" * 43) == 401
        token = org.annotator.token
        assert await status(live, token[:-1] + ("B" if token.endswith("A") else "A")) == 401
    async with httpx.AsyncClient(base_url=live.url) as http:
        assert (await http.get(BRICK.format("small"))).status_code == 401


@pytest.fixture
def long_cache(settings: Settings) -> Settings:
    return with_settings(settings, auth_cache_seconds=30.0)


async def test_changes_elsewhere_wait_for_the_bound_and_ours_do_not(long_cache: Settings) -> None:
    async with live_with(long_cache) as live:
        await setup(live)
        user_id, _ = await live.user("ann")
        token_id, token = await new_token(live, user_id)
        assert await status(live, token) == 200
        async with live.services.pool.acquire() as db:  # as another instance would
            await db.execute("UPDATE tokens SET revoked_at = now() WHERE id = $1", token_id)
        # Remembered for up to 30 s: the database is not asked for this brick ...
        assert await status(live, token) == 200
        # ... but a change made through this instance counts at once.
        async with live.client(live.admin_token) as http:
            assert (await http.delete(f"/api/tokens/{token_id}")).status_code == 200
        assert await status(live, token) == 401


async def test_change_elsewhere_seen_within_auth_cache_seconds(settings: Settings) -> None:
    bound = 0.5
    async with live_with(with_settings(settings, auth_cache_seconds=bound)) as live:
        await setup(live)
        user_id, _ = await live.user("ann")
        token_id, token = await new_token(live, user_id)
        assert await status(live, token) == 200
        async with live.services.pool.acquire() as db:
            await db.execute("UPDATE tokens SET revoked_at = now() WHERE id = $1", token_id)
            since = time.monotonic()  # committed (no transaction: autocommit)
        took = await refused_within(live, token, since, bound)
        assert took <= bound + 10  # the deadline of the poll itself


async def test_expired_token_refused_after_its_expiry(long_cache: Settings) -> None:
    async with live_with(long_cache) as live:
        await setup(live)
        user_id, _ = await live.user("ann")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
        _, token = await new_token(live, user_id, expires=expires.isoformat())
        if await status(live, token) != 200:
            pytest.skip("the machine took over 3 s to answer the first request")
        since = time.monotonic() + (expires - dt.datetime.now(dt.UTC)).total_seconds()
        # Remembered for 30 s, but never past the token's own expiry.
        await refused_within(live, token, since, 0.0)


async def test_cache_off_asks_the_database_every_time(settings: Settings) -> None:
    async with live_with(with_settings(settings, auth_cache_seconds=0.0)) as live:
        await setup(live)
        user_id, _ = await live.user("ann")
        token_id, token = await new_token(live, user_id)
        assert await status(live, token) == 200
        async with live.services.pool.acquire() as db:
            await db.execute("UPDATE tokens SET revoked_at = now() WHERE id = $1", token_id)
        assert await status(live, token) == 401
        assert len(live.services.auth_cache) == 0
        assert hash_token(token) not in live.services.auth_cache._principals
