"""The embedded PostgreSQL server (the ``pgserver`` package) for laptops and tests.

``pgserver``'s own cleanup relies on ``atexit`` handlers that do not run when
uvicorn re-raises SIGTERM (field notes), so we stop the server ourselves with
``pg_ctl stop`` and unregister its handler.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("collab.store.embedded")


def clear_stale_lock(pgdata: Path) -> None:
    """Make a data dir whose server was killed (SIGKILL, power loss) startable.

    ``postmaster.pid`` names the server's PID. After a SIGKILL of the server
    together with ours, that PID can stay a zombie (nobody reaps it in a
    container) or belong to another process later: pgserver then takes the
    dead server for a running one, PostgreSQL refuses to start beside the lock
    file, and its orphaned backends may still hold the shared memory. So when
    the named process is not a live postgres working in this data dir, the
    orphans that are (a postgres process's working directory is its data
    dir) are killed and the lock files (data dir and socket) removed; PostgreSQL then recovers from
    its WAL as after any crash."""
    import psutil

    lock = pgdata / "postmaster.pid"
    try:
        lines = lock.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return
    if _serves(pid, pgdata):
        return
    orphans = [p for p in psutil.process_iter(["pid"]) if p.pid != pid and _serves(p.pid, pgdata)]
    for proc in orphans:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(orphans, timeout=10)
    # The socket's lock file names the dead server too (line 4: port, 5: socket dir).
    if len(lines) > 4 and lines[3].strip().isdigit() and lines[4].strip():
        sockets = Path(lines[4].strip())
        for name in (f".s.PGSQL.{lines[3].strip()}.lock", f".s.PGSQL.{lines[3].strip()}"):
            (sockets / name).unlink(missing_ok=True)
    lock.unlink(missing_ok=True)
    log.warning(
        "stale postmaster.pid removed",
        extra={"pid": pid, "orphans": len(orphans), "pgdata": str(pgdata)},
    )


def _serves(pid: int, pgdata: Path) -> bool:
    """True when ``pid`` is a live (not zombie) postgres process of ``pgdata``."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return Path(proc.cwd()).resolve() == pgdata.resolve() and "postgres" in proc.name()
    except (psutil.Error, OSError):
        return False


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
        clear_stale_lock(self.pgdata)
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
