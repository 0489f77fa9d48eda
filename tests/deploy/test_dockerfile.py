"""deploy/Dockerfile and .dockerignore, read without Docker."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import tomllib

import pytest

from tests.deploy import dockerfile
from tests.deploy.known import DEPLOY, ROOT, health_path, server_port

COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cargo", "rustc", "nodejs", "npm")


@pytest.fixture(scope="module")
def stages() -> dict[str, dockerfile.Stage]:
    _, parsed = dockerfile.parse((DEPLOY / "Dockerfile").read_text())
    return {s.name: s for s in parsed}


@pytest.fixture(scope="module")
def order() -> list[str]:
    _, parsed = dockerfile.parse((DEPLOY / "Dockerfile").read_text())
    return [s.name for s in parsed]


def test_three_stages_and_the_runtime_last(order: list[str], stages: dict) -> None:
    assert order == ["client", "wheels", "runtime"]
    assert stages["client"].base.startswith("node:")
    assert stages["wheels"].base.startswith("python:")
    assert stages["runtime"].base == stages["wheels"].base  # the wheels fit the runtime's Python


def test_the_client_stage_runs_npm_ci_and_the_clients_build_script(stages: dict) -> None:
    scripts = json.loads((ROOT / "client" / "package.json").read_text())["scripts"]
    runs = " ".join(i.text for i in stages["client"].all("RUN"))
    assert "npm ci" in runs
    assert "npm run build" in runs and "build" in scripts
    # The lock file is copied before `npm ci` (it installs exactly that).
    first_copy = stages["client"].all("COPY")[0].text
    assert "package-lock.json" in first_copy


def test_the_client_build_lands_where_the_wheels_stage_takes_it(stages: dict) -> None:
    vite = (ROOT / "client" / "vite.config.ts").read_text()
    out_dir = re.search(r"outDir:\s*'([^']+)'", vite)
    assert out_dir, "vite.config.ts names no outDir"
    (workdir,) = [i.text for i in stages["client"].all("WORKDIR")]
    built = posixpath.normpath(posixpath.join(workdir, out_dir[1]))
    copies = [i for i in stages["wheels"].all("COPY") if i.flags().get("from") == "client"]
    assert copies, "the wheels stage copies nothing from the client stage"
    source, target = shlex.split(copies[0].text)[-2:]
    assert posixpath.normpath(source) == built
    assert posixpath.normpath(target) == "collab/web"


def test_the_wheel_carries_the_built_client(stages: dict) -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = data["tool"]["setuptools"]["package-data"]["collab"]
    assert "web/*.html" in package_data and "web/assets/*" in package_data
    runs = " ".join(i.text for i in stages["wheels"].all("RUN"))
    assert "pip wheel" in runs and "--wheel-dir /wheels" in runs
    assert "collab/web/index.html" in runs  # the build fails on a wheel without the client


def test_the_runtime_installs_the_wheels_only(stages: dict) -> None:
    runtime = stages["runtime"]
    # Nothing from the build context: no sources in the image.
    for step in runtime.all("COPY") + runtime.all("ADD"):
        assert "from" in step.flags(), f"the runtime copies from the build context: {step.text}"
    installs = [i for i in runtime.all("RUN") if "pip install" in i.text]
    assert installs
    for step in installs:
        assert "--no-index" in step.text, step.text
        assert "--find-links=/wheels" in step.text or "--find-links /wheels" in step.text
        assert "from=wheels" in step.flags().get("mounts", ""), "the wheels are not mounted"
    for step in runtime.all("RUN"):
        words = set(re.split(r"[\s;&|]+", step.text))
        assert not words & set(COMPILERS), f"the runtime installs a build tool: {step.text}"


def test_the_runtime_runs_collab_serve_as_a_non_root_user(stages: dict) -> None:
    runtime = stages["runtime"]
    (user,) = [i.text for i in runtime.all("USER")]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid"
    (entrypoint,) = [i.exec_form() for i in runtime.all("ENTRYPOINT")]
    assert entrypoint is not None and entrypoint[-2:] == ["collab", "serve"]
    (cmd,) = [i.exec_form() for i in runtime.all("CMD")]
    assert cmd is not None
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert int(cmd[cmd.index("--port") + 1]) == server_port()


def test_the_port_is_exposed_and_the_healthcheck_probes_health(stages: dict) -> None:
    runtime = stages["runtime"]
    exposed = {p.split("/")[0] for i in runtime.all("EXPOSE") for p in i.text.split()}
    assert str(server_port()) in exposed
    (check,) = runtime.all("HEALTHCHECK")
    probe = " ".join(check.exec_form() or [])
    assert f"127.0.0.1:{server_port()}{health_path()}" in probe


def test_dockerignore_sends_what_the_dockerfile_copies_and_no_build_output(
    stages: dict,
) -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def matches(pattern: str, path: str) -> bool:
        """Docker's rule: a pattern matches a path or any folder above it;
        ``**`` spans folders, ``*`` stays inside one."""
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        parts = path.split("/")
        return any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))

    def sent(path: str) -> bool:
        included = True
        for rule in rules:  # the last matching rule decides, as in Docker
            negate = rule.startswith("!")
            if matches(rule.lstrip("!").rstrip("/"), path):
                included = negate
        return included

    sources = []
    for stage in stages.values():
        for step in stage.all("COPY"):
            if "from" not in step.flags():
                sources += [w for w in shlex.split(step.text)[:-1] if not w.startswith("--")]
    assert sources
    for source in sources:
        assert sent(source.rstrip("/") + ("/x" if source.endswith("/") else "")), source
    for kept_out in ("client/node_modules/x", "collab/web/index.html", "collab/__pycache__/x"):
        assert not sent(kept_out), kept_out
