"""Running the ``collab`` command line against a live server, from async tests."""

from __future__ import annotations

import asyncio
import os
import sys


async def run_cli(*args: str, token: str, timeout: float = 120) -> tuple[int, str, str]:
    """``collab *args`` in a subprocess with ``COLLAB_TOKEN``; (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "collab.cli",
        *args,
        env={**os.environ, "COLLAB_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()
