"""docs/prometheus-alerts.yml: a well-formed Prometheus rules file whose expressions name
only metrics that ``/metrics`` can expose (read from the registries, not a list here)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

from recsite import metrics  # noqa: F401  (defines every per-process metric)
from training.metrics import TrainingCollector

RULES = Path(__file__).resolve().parents[2] / "docs" / "prometheus-alerts.yml"
METRIC = re.compile(r"\brecsite_[a-z0-9_]+\b")
# The sample names each type of metric family exposes.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def exposed_names() -> set[str]:
    """Every sample name of the families ``/metrics`` serves: the process registry's
    (every metric defined at import, observed or not) and the database collector's, as
    it describes them (without a query)."""
    families = [*REGISTRY.collect(), *TrainingCollector().describe()]
    return {family.name + suffix for family in families for suffix in SUFFIXES[family.type]}


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    found = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"}, group
        assert isinstance(group["rules"], list) and group["rules"]
        found.extend(group["rules"])
    return found


def test_every_rule_has_the_fields_prometheus_needs():
    alerts = [rule["alert"] for rule in rules()]
    assert len(alerts) == len(set(alerts)), "alert names repeat"
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]


def test_every_metric_an_expression_names_exists():
    exposed = exposed_names()
    assert "recsite_training_runs_total" in exposed  # read from the database collector
    assert "recsite_served_responses_total" in exposed
    for rule in rules():
        if rule["labels"].get("placeholder") == "true":
            continue
        unknown = set(METRIC.findall(rule["expr"])) - exposed
        assert not unknown, f"{rule['alert']} names metrics /metrics does not expose: {unknown}"


def test_a_placeholder_rule_is_one_whose_metric_does_not_exist_yet():
    """Once its metric exists, the rule is checked like the others: remove the label."""
    exposed = exposed_names()
    for rule in rules():
        if rule["labels"].get("placeholder") == "true":
            assert set(METRIC.findall(rule["expr"])) - exposed, rule["alert"]


def test_the_alerts_asked_for_are_there():
    names = {rule["alert"] for rule in rules()}
    assert {
        "RecsiteModelStale",
        "RecsiteTrainingLastRunFailed",
        "RecsiteNoSuccessfulRun",
        "RecsiteFallbackShareHigh",
        "RecsiteIngestRefusalsHigh",
        "RecsiteServedListsDropped",
    } <= names


def test_the_served_lists_dropped_rule_groups_by_the_counters_label():
    (rule,) = [r for r in rules() if r["alert"] == "RecsiteServedListsDropped"]
    assert "placeholder" not in rule["labels"]
    # recsite_served_lists_dropped_total has one label, reason (docs/OPERATIONS.md).
    assert "by (reason)" in rule["expr"]
    assert "$labels.reason" in rule["annotations"]["summary"]
