"""deploy/compose.yaml, read as YAML (no Docker)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from collab.config import Settings
from tests.deploy.known import (
    DEPLOY,
    PROXY_VARIABLES,
    assignments,
    health_path,
    server_port,
    setting_names,
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def instances(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("env_file") == "collab.env"
    }


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = {
        name: value
        for name, value, commented in assignments((DEPLOY / svc["env_file"]).read_text())
        if not commented
    }
    declared = svc.get("environment") or {}
    if isinstance(declared, list):
        declared = dict(item.split("=", 1) for item in declared)
    env.update({k: str(v) for k, v in declared.items()})
    return env


def test_several_instances_of_one_image_built_from_the_dockerfile(compose: dict) -> None:
    found = instances(compose)
    assert len(found) >= 3
    images = {svc["image"] for svc in found.values()}
    assert len(images) == 1
    for svc in found.values():
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()
        assert svc["expose"] == [str(server_port())]


def test_nothing_is_installed_at_container_start(compose: dict) -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    assert "pip install" not in text and "npm " not in text
    for svc in instances(compose).values():
        assert "command" not in svc and "entrypoint" not in svc


def test_every_variable_set_is_a_setting(compose: dict) -> None:
    for name, svc in instances(compose).items():
        for variable in environment(svc):
            assert variable in setting_names() | PROXY_VARIABLES, f"{name}: {variable}"


def test_the_instances_share_the_database_and_the_datasets(compose: dict) -> None:
    envs = [environment(svc) for svc in instances(compose).values()]
    urls = {env["COLLAB_DATABASE_URL"] for env in envs}
    assert len(urls) == 1
    url = urlsplit(urls.pop())
    assert url.scheme == "postgresql" and url.hostname == "postgres"
    postgres = compose["services"]["postgres"]
    assert url.path.lstrip("/") == postgres["environment"]["POSTGRES_DB"]
    assert url.username == postgres["environment"]["POSTGRES_USER"]
    for env, svc in zip(envs, instances(compose).values(), strict=True):
        roots = Settings.from_env(env).roots
        mounts = [m.split(":") for m in svc["volumes"]]
        shared = [m for m in mounts if m[1] in roots]
        assert shared and shared[0][0] in compose["volumes"], "datasets: a shared named volume"
        assert shared[0][2:] == ["ro"], "the instances only read datasets"
        data_dir = str(Settings.from_env(env).data_dir)
        assert any(m[1] == data_dir for m in mounts), "the data dir on a volume"
    data_volumes = [
        m.split(":")[0]
        for svc in instances(compose).values()
        for m in svc["volumes"]
        if m.split(":")[1] == data_dir
    ]
    assert len(set(data_volumes)) == len(data_volumes), "each instance its own data dir"


def test_postgres_is_persistent_and_health_checked_and_waited_for(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    for svc in instances(compose).values():
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_nginx_fronts_the_instances(compose: dict) -> None:
    nginx = compose["services"]["nginx"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert set(nginx["depends_on"]) == set(instances(compose))
    # The instances answer the health path the image's HEALTHCHECK probes.
    assert health_path() in (DEPLOY / "Dockerfile").read_text()
    # `resolve` in upstreams needs nginx >= 1.27.3.
    tag = nginx["image"].split(":")[1].split("-")[0]
    version = tuple(int(x) for x in tag.split("."))
    assert version >= (1, 27, 3) or version[:2] >= (1, 28), nginx["image"]
