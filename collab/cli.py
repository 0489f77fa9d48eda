"""The ``collab`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collab import logs
from collab.config import Settings
from collab.errors import ConfigError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collab", description="collaborative EM annotation server"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument(
        "--data-dir", type=Path, default=None, help="data directory (default ./collab-data)"
    )
    demo = sub.add_parser("demo", help="create the demo data once, then serve it")
    demo.add_argument("--port", type=int, default=None, help="port (default 8000)")
    demo.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env().with_overrides(
            host=getattr(args, "host", None), port=args.port, data_dir=args.data_dir
        )
    except ConfigError as exc:
        print(f"collab: {exc.message}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    from collab.server import serve

    if args.command == "serve":
        serve(settings)
    elif args.command == "demo":
        from collab.demo import prepare

        serve(settings, on_ready=prepare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
