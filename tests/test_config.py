"""Settings read once: dataset roots that hold URLs, object-storage settings."""

from __future__ import annotations

import pytest

from collab.config import ObjectStorage, Settings, parse_roots
from collab.errors import ConfigError


def test_roots_keep_urls_whole() -> None:
    raw = "/data/a:s3://bucket/em/:relative:http://host:9000/em:file:///local:s3a://b"
    assert parse_roots(raw) == (
        "/data/a",
        "s3://bucket/em/",
        "relative",
        "http://host:9000/em",
        "file:///local",
        "s3a://b",
    )
    assert parse_roots("") == ()
    assert Settings.from_env({"COLLAB_DATASET_ROOTS": "/x:s3://b/p"}).roots == ("/x", "s3://b/p")


@pytest.mark.parametrize(
    "root", ["s3://", "s3:///em", "s3://b/../x", "s3://b/./x", "s3://b?x", "s3://b#x"]
)
def test_url_roots_must_name_a_bucket(root: str) -> None:
    with pytest.raises(ConfigError, match="COLLAB_DATASET_ROOTS"):
        parse_roots(f"/data:{root}")


def test_object_storage_from_env() -> None:
    storage = Settings.from_env(
        {
            "COLLAB_S3_ENDPOINT_URL": "http://127.0.0.1:9000/",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "very-secret",
            "AWS_SESSION_TOKEN": "session-secret",
            "AWS_DEFAULT_REGION": "eu-central-1",
            "COLLAB_S3_TIMEOUT_SECONDS": "7.5",
            "COLLAB_S3_RETRIES": "0",
        }
    ).object_storage
    assert storage.endpoint_url == "http://127.0.0.1:9000"
    assert storage.region == "eu-central-1"
    assert (storage.access_key_id, storage.secret_access_key) == ("AKIDEXAMPLE", "very-secret")
    assert storage.timeout_seconds == 7.5 and storage.retries == 0
    assert storage.connect_timeout_seconds == ObjectStorage().connect_timeout_seconds
    # Settings may be logged: their repr holds no secret.
    shown = repr(
        Settings.from_env({"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "x-secret"})
    )
    assert "AKIDEXAMPLE" not in shown and "x-secret" not in shown
    # The standard endpoint variables, when collab's own is unset.
    assert ObjectStorage.from_env({"AWS_ENDPOINT_URL": "https://s3.example"}).endpoint_url == (
        "https://s3.example"
    )
    assert ObjectStorage.from_env({}) == ObjectStorage()
    assert ObjectStorage.from_env({"AWS_SKIP_SIGNATURE": "true"}).anonymous


@pytest.mark.parametrize(
    "env",
    [
        {"COLLAB_S3_ENDPOINT_URL": "ftp://host"},
        {"COLLAB_S3_ENDPOINT_URL": "http://host/path"},
        {"AWS_ACCESS_KEY_ID": "only-the-key"},
        {"COLLAB_S3_TIMEOUT_SECONDS": "0"},
        {"COLLAB_S3_RETRIES": "-1"},
    ],
)
def test_object_storage_refusals(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ObjectStorage.from_env(env)
