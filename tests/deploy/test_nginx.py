"""deploy/nginx.conf, read without nginx: the server's WebSocket routes are
proxied with upgrade headers, one annotation's paths are hashed by its id,
and the upstreams are the compose file's instances on the server's port."""

from __future__ import annotations

import re

import pytest
import yaml

from collab.config import Settings
from tests.deploy import nginx_conf
from tests.deploy.known import (
    DEPLOY,
    app_routes,
    example_path,
    health_path,
    server_port,
    websocket_paths,
)


@pytest.fixture(scope="module")
def http() -> nginx_conf.Directive:
    # The file is included inside nginx's `http` block (conf.d/default.conf).
    return nginx_conf.parse((DEPLOY / "nginx.conf").read_text())


@pytest.fixture(scope="module")
def server(http: nginx_conf.Directive) -> nginx_conf.Directive:
    return http.one("server")


def upstream(http: nginx_conf.Directive, loc: nginx_conf.Location) -> nginx_conf.Directive:
    (target,) = loc.directive.values("proxy_pass")
    match = re.fullmatch(r"http://([\w-]+)", target[0])
    assert match, f"proxy_pass to {target[0]}: expected an upstream name"
    (found,) = [u for u in http.all("upstream") if u.args == [match[1]]]
    return found


def annotation_paths() -> list[str]:
    """Route templates of one annotation: its sockets and its REST calls."""
    sockets = [p for p in websocket_paths() if "{annotation_id}" in p]
    rest = [
        r.path
        for r in app_routes()
        if getattr(r, "path", "").startswith("/api/annotations/{annotation_id}")
    ]
    assert sockets and rest
    return sockets + rest


def test_every_websocket_route_is_proxied_with_the_upgrade_headers(
    http: nginx_conf.Directive, server: nginx_conf.Directive
) -> None:
    (upgrade_map,) = [d for d in http.all("map") if d.args[0] == "$http_upgrade"]
    connection_var = upgrade_map.args[1]
    assert nginx_conf.map_value(http, "$http_upgrade", connection_var, "websocket") == "upgrade"
    for template in websocket_paths():
        path = example_path(template)
        loc = nginx_conf.select(server, path)
        assert loc is not None, f"no location proxies {path}"
        # A location that sets any header inherits none from the server.
        headers = loc.directive.values("proxy_set_header") or server.values("proxy_set_header")
        assert ["Upgrade", "$http_upgrade"] in headers, path
        assert ["Connection", connection_var] in headers, path
        version = loc.directive.values("proxy_http_version") or server.values("proxy_http_version")
        assert version == [["1.1"]], path
        upstream(http, loc)
        (timeout,) = loc.directive.values("proxy_read_timeout")
        assert nginx_conf.seconds(timeout[0]) >= 60, f"{path}: sockets idle between pings"


def test_an_annotations_paths_are_hashed_by_its_id(
    http: nginx_conf.Directive, server: nginx_conf.Directive
) -> None:
    for template in annotation_paths():
        path = example_path(template, annotation=4711)
        loc = nginx_conf.select(server, path)
        assert loc is not None, path
        hashed = upstream(http, loc).all("hash")
        assert hashed, f"{path} is not routed by annotation"
        key, *options = hashed[0].args
        assert "consistent" in options
        (source,) = [d.args[0] for d in http.all("map") if d.args[1] == key]
        assert source == "$uri"
        assert nginx_conf.map_value(http, source, key, path) == "4711", path


def test_other_paths_reach_an_upstream_without_redirects(
    http: nginx_conf.Directive, server: nginx_conf.Directive
) -> None:
    for path in ("/", "/api/annotations", "/api/datasets", health_path(), "/data/em/color"):
        loc = nginx_conf.select(server, path)
        assert loc is not None, path
        upstream(http, loc)
    # nginx answers a path equal to a proxied prefix without its trailing
    # slash with a 301 itself (`POST /api/annotations` would never arrive).
    for loc in nginx_conf.locations(server):
        if loc.modifier in ("", "^~"):
            assert loc.pattern == "/" or not loc.pattern.endswith("/"), loc.pattern


def test_metrics_are_not_served_through_the_proxy(server: nginx_conf.Directive) -> None:
    loc = nginx_conf.select(server, "/metrics")
    assert loc is not None and loc.modifier == "="
    assert loc.directive.values("return")[0][0] in ("403", "404")


def test_the_client_address_replaces_what_the_client_sent(server: nginx_conf.Directive) -> None:
    # uvicorn with FORWARDED_ALLOW_IPS=* believes the leftmost entry.
    assert ["X-Forwarded-For", "$remote_addr"] in server.values("proxy_set_header")


def test_the_body_limit_holds_the_servers(server: nginx_conf.Directive) -> None:
    (size,) = server.values("client_max_body_size")
    assert nginx_conf.size_bytes(size[0]) >= Settings().max_body_bytes


def test_the_upstreams_are_the_compose_instances_on_the_servers_port(
    http: nginx_conf.Directive,
) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    instances = {
        name for name, svc in compose["services"].items() if svc.get("env_file") == "collab.env"
    }
    assert len(instances) >= 2
    upstreams = http.all("upstream")
    assert upstreams
    for up in upstreams:
        servers = {d.args[0] for d in up.all("server")}
        assert servers == {f"{name}:{server_port()}" for name in instances}, up.args
        for d in up.all("server"):
            assert "resolve" in d.args, "instances are re-resolved while nginx runs"
        assert up.all("zone"), "`resolve` needs a shared zone"
    assert http.all("resolver")
