"""deploy/collab.env against the settings the server reads (collab/config.py)."""

from __future__ import annotations

import pytest

from collab.config import Settings
from collab.errors import ConfigError
from tests.deploy.known import DEPLOY, PROXY_VARIABLES, ROOT, assignments, setting_names

ENV = DEPLOY / "collab.env"
#: Commented lines show defaults, except these, whose examples name a place.
EXAMPLES = {"COLLAB_DATABASE_URL", "COLLAB_ADMIN_TOKEN"}


def test_settings_are_read_by_name() -> None:
    # The names come from Settings.from_env itself; a sample to be sure.
    names = setting_names()
    assert {"COLLAB_DATABASE_URL", "COLLAB_DATA_DIR", "COLLAB_DATASET_ROOTS"} <= names
    assert "COLLAB_LIMIT_CONNECT_IP" in names and "COLLAB_BRICK_CACHE_BYTES" in names


def test_every_name_in_the_env_file_is_a_setting() -> None:
    for name, _, _ in assignments(ENV.read_text()):
        assert name in setting_names() | PROXY_VARIABLES, f"{name} is read by nothing"


def test_the_env_file_lists_every_setting() -> None:
    listed = {name for name, _, _ in assignments(ENV.read_text())}
    assert setting_names() - listed == set()


def test_every_value_in_the_env_file_is_accepted() -> None:
    for name, value, _ in assignments(ENV.read_text()):
        if name in setting_names() and value:
            try:
                Settings.from_env({name: value})
            except ConfigError as exc:  # pragma: no cover - the message is the point
                pytest.fail(f"collab.env: {exc.message}")


def test_commented_values_are_the_defaults() -> None:
    default = Settings.from_env({})
    for name, value, commented in assignments(ENV.read_text()):
        if commented and value and name in setting_names() - EXAMPLES:
            assert Settings.from_env({name: value}) == default, f"{name}={value} is not the default"


def test_the_docs_name_every_setting() -> None:
    docs = (ROOT / "docs" / "config.md").read_text()
    for name in setting_names() | PROXY_VARIABLES:
        assert name in docs, f"docs/config.md does not mention {name}"


def test_env_files_have_no_inline_comments() -> None:
    # Kubernetes, systemd and older compose keep "value # note" as the value.
    for name, value, _ in assignments(ENV.read_text()):
        assert " #" not in value, f"{name}: inline comment"
