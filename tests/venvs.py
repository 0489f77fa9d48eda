"""Virtual environments for third-party tools the tests compare against.

The `webknossos` library is AGPL and `ome-zarr` pulls in dask and
scikit-image: each lives in its own venv (cached in the temp folder between
runs), is driven by scripts through subprocesses and is never imported here.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

WEBKNOSSOS = "webknossos==4.3.3"
OME_ZARR = "ome-zarr==0.18.0"


def tool_python(requirement: str) -> Path:
    """The python of a venv holding ``requirement`` (created once)."""
    name = requirement.replace("==", "-").replace("[", "").replace("]", "")
    venv = Path(tempfile.gettempdir()) / f"collab-{name}"
    python = venv / "bin" / "python"
    if not (venv / "ok").exists():
        subprocess.run(
            [sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", requirement], check=True, timeout=900
        )
        (venv / "ok").write_text("installed\n")
    return python


def run_script(python: Path, script: Path, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(python), str(script), *args], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
