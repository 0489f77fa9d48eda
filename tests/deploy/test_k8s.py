"""deploy/k8s, read as YAML (no cluster): the manifests the kustomization
lists, checked against the server's settings, port, health path and routes,
and against each other (names, labels, ports, keys)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from collab.config import Settings
from tests.deploy import dockerfile
from tests.deploy.known import (
    DEPLOY,
    PROXY_VARIABLES,
    example_path,
    health_path,
    server_port,
    setting_names,
    websocket_paths,
)

K8S = DEPLOY / "k8s"
Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    loaded = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def manifests(kustomization: dict[str, Any]) -> list[Manifest]:
    docs: list[Manifest] = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / resource).read_text()) if d]
    return docs


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]


def the(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = find(manifests, kind, name)
    return found


def container(deployment: Manifest) -> dict[str, Any]:
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(found, dict)
    return found


def test_every_file_is_kubernetes_yaml_and_listed_or_optional(
    kustomization: dict[str, Any],
) -> None:
    listed = set(kustomization["resources"])
    optional = {"networkpolicy.yaml"}  # names the cluster's namespaces: opt in
    for path in K8S.glob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        assert path.name in listed | optional, f"{path.name} is in no kustomization"
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path.name
            assert "namespace" not in doc["metadata"], "the kustomization sets the namespace"
    assert kustomization["namespace"] == "collab"


def test_the_deployment_runs_three_instances_of_the_image(manifests: list[Manifest]) -> None:
    deployment = the(manifests, "Deployment", "collab")
    assert deployment["spec"]["replicas"] == 3
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0
    c = container(deployment)
    args = c["args"]
    assert args[args.index("--port") + 1] == str(server_port())
    assert args[args.index("--host") + 1] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": server_port()}


def test_the_probes_ask_the_health_endpoint(manifests: list[Manifest]) -> None:
    c = container(the(manifests, "Deployment", "collab"))
    for probe in ("startupProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == health_path() and get["port"] == "http", probe
    live = " ".join(c["livenessProbe"]["exec"]["command"])
    assert f"127.0.0.1:{server_port()}{health_path()}" in live
    # Alive means answering, 200 or 503: a database outage restarts nothing.
    assert "HTTPError" in live
    budget = c["livenessProbe"]["periodSeconds"] * c["livenessProbe"]["failureThreshold"]
    assert budget >= 30, "a million-node room build holds the event loop ~7-10 s"


def test_resources_are_set(manifests: list[Manifest]) -> None:
    resources = container(the(manifests, "Deployment", "collab"))["resources"]
    for key in ("cpu", "memory"):
        assert key in resources["requests"] and key in resources["limits"]
    memory = resources["limits"]["memory"]
    assert re.fullmatch(r"\d+Gi", memory) and int(memory[:-2]) >= 2, memory


def test_the_environment_is_settings_from_a_configmap_and_a_secret(
    manifests: list[Manifest],
) -> None:
    deployment = the(manifests, "Deployment", "collab")
    c = container(deployment)
    (source,) = c["envFrom"]
    config = the(manifests, "ConfigMap", source["configMapRef"]["name"])
    for name, value in config["data"].items():
        assert name in setting_names() | PROXY_VARIABLES, f"ConfigMap: {name}"
        if name in setting_names():
            Settings.from_env({name: str(value)})  # a malformed value raises
    secret_values = {}
    for variable in c["env"]:
        if variable["name"] == "POD_IP":  # the downward API, for the instance's url
            assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
            continue
        assert variable["name"] in setting_names(), variable["name"]
        if variable["name"] == "COLLAB_INSTANCE_URL":  # each pod's own: the others reach it
            assert variable["value"] == "http://$(POD_IP):8000"
            continue
        ref = variable["valueFrom"]["secretKeyRef"]
        secret = the(manifests, "Secret", ref["name"])
        assert ref["key"] in secret["stringData"], ref["key"]
        secret_values[variable["name"]] = secret["stringData"][ref["key"]]
    assert {"COLLAB_DATABASE_URL", "COLLAB_ADMIN_TOKEN"} <= set(secret_values)
    assert not {"COLLAB_DATABASE_URL", "COLLAB_ADMIN_TOKEN"} & set(config["data"])
    settings = Settings.from_env({**config["data"], **secret_values})
    assert settings.database_url and settings.database_url.startswith("postgresql://")


def test_the_volumes_hold_the_data_dir_and_the_datasets(manifests: list[Manifest]) -> None:
    deployment = the(manifests, "Deployment", "collab")
    c = container(deployment)
    config = the(manifests, "ConfigMap", c["envFrom"][0]["configMapRef"]["name"])
    settings = Settings.from_env(config["data"])
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert str(settings.data_dir) in mounts
    for root in settings.roots:
        mount = mounts[root]
        assert mount.get("readOnly") is True, "instances only read datasets"
        claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        pvc = the(manifests, "PersistentVolumeClaim", claim)
        assert (
            "ReadWriteMany" in pvc["spec"]["accessModes"]
            or "ReadOnlyMany" in pvc["spec"]["accessModes"]
        ), "pods on several nodes mount the datasets"
    # A read-only root file system: every place written to is a volume.
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert "/tmp" in mounts


def test_the_pods_run_as_the_images_user(manifests: list[Manifest]) -> None:
    security = the(manifests, "Deployment", "collab")["spec"]["template"]["spec"]["securityContext"]
    _, stages = dockerfile.parse((DEPLOY / "Dockerfile").read_text())
    (user,) = [i.text for i in stages[-1].all("USER")]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == user.split(":")[0]


def test_services_select_the_pods_on_the_http_port(manifests: list[Manifest]) -> None:
    labels = the(manifests, "Deployment", "collab")["spec"]["template"]["metadata"]["labels"]
    for name in ("collab", "collab-rooms"):
        service = the(manifests, "Service", name)
        assert service["spec"]["selector"].items() <= labels.items()
        (port,) = service["spec"]["ports"]
        assert port["targetPort"] == "http" and port["name"] == "http"
    pdb = the(manifests, "PodDisruptionBudget", "collab")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def ingress_routes(ingress: Manifest) -> list[tuple[str, str, str]]:
    return [
        (path["path"], path["pathType"], path["backend"]["service"]["name"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]


def test_an_annotations_sockets_are_hashed_by_its_id(manifests: list[Manifest]) -> None:
    rooms = the(manifests, "Ingress", "collab-rooms")
    notes = rooms["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/use-regex"] == "true"
    assert notes["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$1"
    routes = ingress_routes(rooms)
    for template in [p for p in websocket_paths() if "{annotation_id}" in p] + [
        "/api/annotations/{annotation_id}/nml"
    ]:
        path = example_path(template, annotation=4711)
        # ingress-nginx writes each path as `location ~* "^<path>"`.
        hits = [(r, re.match(r, path, re.IGNORECASE)) for r, kind, _ in routes if kind != "Prefix"]
        matched = [(r, m) for r, m in hits if m]
        assert matched, f"{path} is not routed by annotation"
        assert matched[0][1].group(1) == "4711", f"{matched[0][0]}: $1 is not the id"
    for _, _, service in routes:
        assert service == "collab-rooms", "the hashed routes need a Service of their own"


def test_every_websocket_path_has_long_timeouts(manifests: list[Manifest]) -> None:
    ingresses = {i["metadata"]["name"]: i for i in find(manifests, "Ingress")}
    for template in websocket_paths():
        path = example_path(template)
        chosen = None
        for ingress in ingresses.values():
            for pattern, kind, _ in ingress_routes(ingress):
                if kind == "Prefix" and pattern == "/" and chosen is None:
                    chosen = ingress
                elif kind != "Prefix" and re.match(pattern, path):
                    chosen = ingress
                    break
        assert chosen is not None, path
        notes = chosen["metadata"]["annotations"]
        for key in ("proxy-read-timeout", "proxy-send-timeout"):
            assert int(notes[f"nginx.ingress.kubernetes.io/{key}"]) >= 60, (path, key)


def test_ingresses_name_existing_services_and_take_the_body_limit(
    manifests: list[Manifest],
) -> None:
    services = {s["metadata"]["name"] for s in find(manifests, "Service")}
    for ingress in find(manifests, "Ingress"):
        for _, _, service in ingress_routes(ingress):
            assert service in services
        size = ingress["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/proxy-body-size")
        if size is not None:
            assert size.endswith("m") and int(size[:-1]) * 2**20 >= Settings().max_body_bytes
    closed = the(manifests, "Ingress", "collab-metrics-closed")
    assert ingress_routes(closed) == [("/metrics", "Exact", "collab")]


def test_the_reference_postgres_is_what_the_secret_names(manifests: list[Manifest]) -> None:
    secret = the(manifests, "Secret", "collab")["stringData"]
    url = urlsplit(secret["database-url"])
    service = the(manifests, "Service", url.hostname or "")
    assert [p["port"] for p in service["spec"]["ports"]] == [url.port]
    statefulset = the(manifests, "StatefulSet", "postgres")
    env = {e["name"]: e for e in container(statefulset)["env"]}
    assert env["POSTGRES_USER"]["value"] == url.username
    assert env["POSTGRES_DB"]["value"] == url.path.lstrip("/")
    ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert secret[ref["key"]] == url.password
    assert statefulset["spec"]["volumeClaimTemplates"], "the database on a volume"
    assert "pg_isready" in container(statefulset)["readinessProbe"]["exec"]["command"]
