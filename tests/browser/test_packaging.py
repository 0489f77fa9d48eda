"""A release wheel carries the built browser client (deploy/build-wheel.sh)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_the_wheel_carries_the_built_client(built_client: Path, tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("collab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "collab/web/index.html" in names
    assert any(n.startswith("collab/web/assets/") and n.endswith(".js") for n in names)
    assert not any(n.startswith("client/") for n in names)  # sources stay out
