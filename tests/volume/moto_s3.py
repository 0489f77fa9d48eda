"""A local S3-compatible server (moto's server mode) on a loopback port, for
the object-storage tests and benchmark: start, stop (the store goes away),
start again on the same port (its buckets come back: moto keeps them in
this process), and upload a dataset folder."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import boto3
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from collab.config import ObjectStorage, Settings

ACCESS_KEY = "collab-test-key"
SECRET_KEY = "collab-test-secret"
REGION = "us-east-1"


class MotoS3:
    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self.port = 0
        # werkzeug logs every request at INFO.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        assert self._server is None
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()  # returns once it listens
        self.port = server.get_host_and_port()[1]
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket: connections are refused."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            if server._server is not None:
                server._server.server_close()

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def upload(self, folder: Path, bucket: str, prefix: str) -> int:
        """Put every file under ``folder`` at ``prefix/<relative path>``; how many."""
        s3 = self.client()
        count = 0
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                key = f"{prefix.strip('/')}/{path.relative_to(folder).as_posix()}"
                s3.upload_file(str(path), bucket, key)
                count += 1
        return count

    def reset(self) -> None:
        """Forget every bucket (moto keeps them per process)."""
        s3 = self.client()
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                for item in page.get("Contents", []):
                    s3.delete_object(Bucket=name, Key=item["Key"])
            s3.delete_bucket(Bucket=name)

    def storage(self, **changes: object) -> ObjectStorage:
        """Settings reaching this server; short timeouts so a stopped store
        answers 503 within a second or two."""
        base = ObjectStorage(
            endpoint_url=self.endpoint,
            region=REGION,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            timeout_seconds=5.0,
            connect_timeout_seconds=1.0,
            retries=1,
        )
        return replace(base, **changes)  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """The same, as a ``collab serve`` process reads it."""
        return {
            "COLLAB_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "COLLAB_S3_TIMEOUT_SECONDS": "5",
            "COLLAB_S3_CONNECT_TIMEOUT_SECONDS": "1",
            "COLLAB_S3_RETRIES": "1",
        }

    def settings(self, settings: Settings, *roots: str) -> Settings:
        return replace(
            settings,
            dataset_roots=(str(settings.data_dir / "datasets"), *roots),
            object_storage=self.storage(),
        )
