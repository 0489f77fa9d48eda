"""The command line answers like the server: an unreachable server, a missing
file or a bad token is one line naming the problem and exit 1, never a traceback."""

from __future__ import annotations

from pathlib import Path

from tests.cli import run_cli
from tests.conftest import LiveServer, free_port


async def test_unreachable_server_and_missing_file(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    for args in (
        ("nml", "export", "--server", nowhere, "1", str(tmp_path / "out.nml")),
        ("dataset", "list", "--server", nowhere),
        ("nml", "import", "--server", nowhere, "1", str(tmp_path / "missing.nml")),
    ):
        code, out, err = await run_cli(*args, token="clb_whatever")
        assert code == 1, (args, out, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert ("cannot reach" in err) or ("missing.nml" in err and "No such file" in err), err


async def test_bad_token(live: LiveServer, tmp_path: Path) -> None:
    code, _, err = await run_cli(
        "nml", "export", "--server", live.url, "1", str(tmp_path / "out.nml"), token="clb_wrong"
    )
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "401" in err, err
