"""``collab nml import|export`` against a live server."""

from __future__ import annotations

from pathlib import Path

from collab.skeleton import nml as nmlmod
from tests.cli import run_cli
from tests.conftest import LiveServer
from tests.fixtures import NML


async def _cli(*args: str, token: str) -> tuple[int, str, str]:
    return await run_cli("nml", *args, token=token)


async def test_import_then_export(live: LiveServer, tmp_path: Path) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    code, out, err = await _cli(
        "import",
        str(ann),
        str(NML / "tracing.nml"),
        "--server",
        live.url,
        token=token,
    )
    assert code == 0, err
    assert "imported 3 trees, 22 nodes as version 1" in out and "upload" in err
    target = tmp_path / "out.nml"
    code, out, err = await _cli("export", str(ann), str(target), "--server", live.url, token=token)
    assert code == 0, err
    assert nmlmod.read(target.read_bytes()).node_count == 22
    zipped = tmp_path / "out.zip"
    code, _, err = await _cli(
        "export", str(ann), str(zipped), "--zip", "--server", live.url, token=token
    )
    assert code == 0 and nmlmod.read_zip(zipped.read_bytes(), 1 << 30).node_count == 22


async def test_errors_are_reported(live: LiveServer, tmp_path: Path) -> None:
    _, token = await live.user()
    ann = await live.annotation(token)
    bad = tmp_path / "bad.nml"
    bad.write_text(
        "<things><thing id='1'><nodes><node id='1' x='a' y='1' z='1'/></nodes></thing></things>"
    )
    code, _, err = await _cli("import", str(ann), str(bad), "--server", live.url, token=token)
    assert code == 1 and "422 invalid_nml" in err and "line 1" in err
    code, _, err = await _cli(
        "export", "999", str(tmp_path / "x.nml"), "--server", live.url, token=token
    )
    assert code == 1 and "404" in err
