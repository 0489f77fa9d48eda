"""The metrics the docs and the example alert rules name exist
(collab/metrics.py), and the rules watch the several-instances ones."""

from __future__ import annotations

import re

import yaml

from tests.deploy.known import CLUSTER_METRICS, DEPLOY, ROOT, exposed_names, metric_families

#: Prometheus' own series, usable in rules beside ours.
PROMETHEUS = {"up"}


def test_metrics_are_read_from_the_server() -> None:
    families = metric_families()
    assert families["collab_connections"] == "gauge"
    assert families["collab_updates"] == "counter"  # exposed as collab_updates_total
    assert families["collab_commit_seconds"] == "histogram"


def test_the_alert_rules_name_only_existing_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    known = exposed_names(metric_families())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert alerts
    for rule in alerts:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule.get("alert")
        names = set(re.findall(r"\bcollab_[a-z0-9_]+", rule["expr"]))
        assert names <= known, f"{rule['alert']}: {names - known}"
        # Any other selector with labels is one of Prometheus' own series.
        others = set(re.findall(r"\b([a-z_][a-z0-9_]*)\{", rule["expr"])) - names
        assert others <= PROMETHEUS, f"{rule['alert']}: {others - PROMETHEUS}"
        assert names or others, f"{rule['alert']} watches no series"
    used = {n for rule in alerts for n in re.findall(r"\bcollab_[a-z0-9_]+", rule["expr"])}
    families = metric_families()
    for name, kind in CLUSTER_METRICS.items():
        assert families[name] == kind
        assert exposed_names({name: kind}) & used, f"no rule watches {name}"


def test_the_operations_doc_lists_every_metric() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    for name in sorted(exposed_names(metric_families())):
        if name.endswith(("_bucket", "_sum", "_count")):
            name = name.rsplit("_", 1)[0]  # a histogram is listed by its name
        assert f"`{name}" in doc, f"docs/operations.md does not list {name}"
