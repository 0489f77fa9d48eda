"""``collab dataset add|list|info`` against a live server."""

from __future__ import annotations

from pathlib import Path

from tests.cli import run_cli
from tests.conftest import LiveServer
from tests.volume.helpers import make_dataset


async def _cli(*args: str, token: str) -> tuple[int, str, str]:
    return await run_cli("dataset", *args, token=token)


async def test_add_list_info(live: LiveServer) -> None:
    make_dataset(Path(live.settings.roots[0]) / "small")
    server = ("--server", live.url)
    code, out, err = await _cli("add", "small", "small", *server, token=live.admin_token)
    assert code == 0, err
    assert "color" in out and "2-2-1" in out and "mappings cells" in out
    code, out, _ = await _cli("list", *server, token=live.admin_token)
    assert code == 0 and out.startswith("small")
    code, out, _ = await _cli("info", "small", *server, token=live.admin_token)
    assert code == 0 and "topLeft [0, 0, 0] size [100, 80, 70]" in out
    code, _, err = await _cli("add", "small", "small", *server, token=live.admin_token)
    assert code == 1 and "409 conflict" in err
    code, _, err = await _cli("add", "x", "../../etc", *server, token=live.admin_token)
    assert code == 1 and "403 forbidden" in err
    code, _, err = await _cli("info", "nope", *server, token=live.admin_token)
    assert code == 1 and "404" in err
