"""The ``collab`` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

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
    nml = sub.add_parser("nml", help="import or export an annotation's skeleton as NML")
    nml_sub = nml.add_subparsers(dest="nml_command", required=True)
    for name, helptext in (
        ("import", "merge an NML (or zip) into the skeleton"),
        ("export", "download the skeleton as NML"),
    ):
        cmd = nml_sub.add_parser(name, help=helptext)
        cmd.add_argument("annotation", type=int, help="annotation id")
        cmd.add_argument("file", type=Path, help="the .nml or .zip file")
        cmd.add_argument(
            "--server",
            default=os.environ.get("COLLAB_SERVER", "http://127.0.0.1:8000"),
            help="server URL (COLLAB_SERVER)",
        )
        cmd.add_argument("--token", default=None, help="bearer token (default: COLLAB_TOKEN)")
        if name == "export":
            cmd.add_argument(
                "--zip", action="store_true", help="a zip holding the NML, as WEBKNOSSOS downloads"
            )
    dataset = sub.add_parser("dataset", help="register, list and describe datasets")
    ds_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    add = ds_sub.add_parser("add", help="register a dataset folder or URL under a dataset root")
    add.add_argument("name", help="dataset name (letters, digits, _ . -)")
    add.add_argument(
        "url",
        help="a path (relative: under the first root) or a URL under a URL root (s3://bucket/prefix)",
    )
    ds_sub.add_parser("list", help="list registered datasets")
    info = ds_sub.add_parser("info", help="show a dataset's layers and mags")
    info.add_argument("name")
    task = sub.add_parser("task", help="create tasks in bulk")
    task_sub = task.add_subparsers(dest="task_command", required=True)
    create = task_sub.add_parser(
        "create", help="from a CSV or JSON file (all or nothing), or one task per NML file"
    )
    create.add_argument("files", type=Path, nargs="+", help="tasks.csv | tasks.json | *.nml")
    create.add_argument("--project", type=int, default=None, help="project id (NML files)")
    create.add_argument("--task-type", type=int, default=None, help="task type id (NML files)")
    create.add_argument("--dataset", default=None, help="dataset name (NML files)")
    create.add_argument("--instances", type=int, default=1, help="instances per task (NML files)")
    create.add_argument("--experience", default=None, help="domain:min, e.g. tracing:2 (NML files)")
    _client_args(create)
    for cmd in (add, *ds_sub.choices.values()):
        if not any(a.dest == "server" for a in cmd._actions):
            _client_args(cmd)
    return parser


def _client_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--server",
        default=os.environ.get("COLLAB_SERVER", "http://127.0.0.1:8000"),
        help="server URL (COLLAB_SERVER)",
    )
    cmd.add_argument("--token", default=None, help="bearer token (default: COLLAB_TOKEN)")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("nml", "task", "dataset"):
        return _client_command(args)
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
    from collab.web_build import ensure_built

    ensure_built()
    if args.command == "serve":
        serve(settings)
    elif args.command == "demo":
        from collab.demo import ensure_dataset, prepare

        ensure_dataset(settings)
        serve(settings, on_ready=prepare)
    return 0


def _client_command(args: argparse.Namespace) -> int:
    """The commands that talk to a server: every failure is one line and exit 1."""
    import httpx

    from collab import client_cli

    try:
        return _run_client(args, client_cli)
    except httpx.HTTPError as exc:
        print(f"collab: cannot reach the server at {args.server}: {exc}", file=sys.stderr)
    except OSError as exc:
        name = exc.filename or ""
        print(
            f"collab: {name}: {exc.strerror or exc}" if name else f"collab: {exc}", file=sys.stderr
        )
    return 1


def _run_client(args: argparse.Namespace, client_cli: Any) -> int:
    token = client_cli.token_from(args.token)
    if args.command == "nml":
        if args.nml_command == "import":
            return int(client_cli.nml_import(args.server, token, args.annotation, args.file))
        return int(client_cli.nml_export(args.server, token, args.annotation, args.file, args.zip))
    if args.command == "task":
        return int(
            client_cli.task_create(
                args.server,
                token,
                args.files,
                args.project,
                args.task_type,
                args.dataset,
                args.instances,
                args.experience,
            )
        )
    if args.dataset_command == "add":
        return int(client_cli.dataset_add(args.server, token, args.name, args.url))
    if args.dataset_command == "list":
        return int(client_cli.dataset_list(args.server, token))
    return int(client_cli.dataset_info(args.server, token, args.name))


if __name__ == "__main__":
    sys.exit(main())
