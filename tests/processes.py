"""A real ``collab serve`` process, for tests that kill it or attack it from outside."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

COLLAB = Path(sys.executable).parent / "collab"


#: The rate limits (tests/limits/) turned off, for servers that take hundreds
#: of sockets or requests a second from one token (fuzzers, benchmarks).
NO_LIMITS = {
    f"COLLAB_LIMIT_{name}": "0"
    for name in (
        "CONNECT_IP",
        "CONNECT_TOKEN",
        "MESSAGES_IP",
        "MESSAGES_TOKEN",
        "REQUESTS_IP",
        "REQUESTS_TOKEN",
    )
}


class ServerProcess:
    """``collab serve`` on ``port`` with ``data_dir``; an external database
    when ``database_url`` is given, else the embedded one in the data dir."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        admin_token: str,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.admin_token = admin_token
        self.database_url = database_url
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{port}.log"
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    def start(self, timeout: float = 90.0) -> ServerProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("COLLAB_") and k != "PYTEST_CURRENT_TEST"
        }
        env.update(COLLAB_ADMIN_TOKEN=self.admin_token, COLLAB_LOG_LEVEL="WARNING")
        env.update(self.extra_env)
        if self.database_url:
            env["COLLAB_DATABASE_URL"] = self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(COLLAB), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"server did not become healthy:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
                raise
        return self.proc.returncode

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {token or self.admin_token}"}


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
