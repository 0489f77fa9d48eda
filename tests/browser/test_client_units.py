"""The client's own unit tests (vitest, client/test/): the brick frame
decoder against tests/golden/brick_frames.json, the bytes the Python tests
read too."""

from __future__ import annotations

import subprocess
from pathlib import Path

from collab.web_build import CLIENT


def test_client_unit_tests(built_client: Path) -> None:
    done = subprocess.run(
        ["npx", "vitest", "run", "--reporter=dot"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
