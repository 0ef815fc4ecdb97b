"""deploy/prometheus/: the example scrape configuration and the alerting rules
parse, scrape what the suite serves, and every metric the rules name is in a
real scrape of the suite's processes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.kit import config
from tests.support.metrics import scrape
from tools.suite import SERVICES, Suite

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
METRIC = re.compile(r"\b(loyalty_[a-z0-9_]+)\b")
# The sample names a family of each type shows in a scrape.
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}


def rules() -> list[dict]:
    document = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rules_are_five_alerts_each_with_its_severity_and_words():
    found = rules()
    assert [rule["alert"] for rule in found] == [
        "LoyaltyOutboxEntryStuck",
        "LoyaltyFeedConsumerBehind",
        "LoyaltyRpcErrorRate",
        "LoyaltyRpcLatencyHigh",
        "LoyaltyCampaignBudgetNearlyExhausted",
    ]
    for rule in found:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("page", "warn")
        assert {"summary", "description"} <= set(rule["annotations"])
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}")


def test_the_scrape_configuration_names_each_service_at_its_default_metrics_port():
    document = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert document["rule_files"] == ["alerts.yml"]
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in document["scrape_configs"]
    }
    assert targets == {
        spec.name: [getattr(config, f"{spec.name.upper()}_METRICS_ADDRESS")] for spec in SERVICES
    }


def sample_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


@pytest.mark.slow
async def test_every_metric_the_rules_name_is_served_by_the_suite(tmp_path):
    suite = Suite(tmp_path / "data", log_dir=tmp_path / "logs")
    served: set[str] = set()
    try:
        await suite.start_all()
        for running in suite.running.values():
            host, _, port = running.metrics_target.rpartition(":")
            served |= sample_names((await scrape(int(port), host)).text)
    finally:
        await suite.stop_all()
    named = {name for rule in rules() for name in METRIC.findall(rule["expr"])}
    assert named - served == set()
