"""The embedded PostgreSQL server (the ``pgserver`` package) for laptops and tests.

``pgserver``'s own cleanup relies on ``atexit`` handlers that do not run when
uvicorn re-raises SIGTERM (field notes), so we stop the server ourselves with
``pg_ctl stop`` and unregister its handler.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("collab.store.embedded")


class EmbeddedPostgres:
    """A PostgreSQL server living in ``pgdata``; a context manager that stops it."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = Path(pgdata).resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or reuse) the server; return its connection URL. Blocking."""
        if not os.environ.get("XDG_RUNTIME_DIR"):
            # pgserver keeps a lock file there; platformdirs wants a 0700 folder.
            runtime = Path(tempfile.gettempdir()) / f"collab-runtime-{os.getuid()}"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        import pgserver  # imported late: it is heavy and only needed here

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        atexit.unregister(self._server._cleanup)
        uri: str = self._server.get_uri()
        log.info("embedded postgres started", extra={"pgdata": str(self.pgdata)})
        return uri

    @property
    def pid(self) -> int | None:
        return None if self._server is None else self._server.get_pid()

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended). Blocking."""
        server, self._server = self._server, None
        if server is None:
            return
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=server.system_user)
        except subprocess.CalledProcessError:  # already stopped
            pass
        try:
            type(server)._instances.pop(server.pgdata, None)
        except Exception:  # pragma: no cover - pgserver internals changed
            pass
        log.info("embedded postgres stopped", extra={"pgdata": str(self.pgdata)})

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
