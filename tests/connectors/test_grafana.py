"""The Grafana dashboard and the compose "monitoring" profile: every metric name a panel's
PromQL uses is in a real /metrics scrape, and Prometheus and Grafana are provisioned to it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import redis
import yaml

from llmtap.testing import Workload
from tests.compose_helpers import COMPOSE_DIR, load_compose
from tests.connectors.conftest import exposition
from tests.connectors.test_metrics import samples

DASHBOARD = COMPOSE_DIR / "grafana" / "dashboards" / "llmtap.json"
PROMQL_WORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
     "bool", "offset", "e"}
)  # fmt: skip


def expressions() -> list[str]:
    """Return every PromQL expression of the dashboard's panels."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """Return the metric names an expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"[^"]*"', "", expr)  # label values and legend text
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    names = re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)
    return {n for n in names if n not in PROMQL_WORDS and not n.startswith("__")}


def test_the_name_parser_sees_names_not_functions_labels_or_windows() -> None:
    """The parser the next test relies on finds exactly the selected names."""
    expr = 'sum by (gen_ai_request_model) (rate(x_total{a="b"}[$__rate_interval])) / y or vector(0)'
    assert metric_names(expr) == {"x_total", "y"}


def test_every_dashboard_metric_is_in_the_exposition(
    r: redis.Redis, traffic: tuple[Workload, float]
) -> None:
    """Each metric name of each panel is a sample name of a real scrape (budget configured)."""
    scraped = {name for name, _ in samples(exposition(r, monthly_budget_usd=1000.0))}
    scraped |= {"llmtap_alerts_firing"}  # a family with no firing alert has no sample
    used = {name for expr in expressions() for name in metric_names(expr)}
    assert used, "the dashboard has no queries"
    assert sorted(used - scraped) == []


def test_the_dashboard_has_the_four_sections_on_the_provisioned_source() -> None:
    """Rows Overview, Cost, Latency and Pipeline health; every panel on datasource uid
    "prometheus", which the provisioning file defines."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Overview", "Cost", "Latency", "Pipeline health"]
    sources = _yaml(COMPOSE_DIR / "grafana/provisioning/datasources/prometheus.yaml")
    uid = sources["datasources"][0]["uid"]
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert {p["datasource"]["uid"] for p in board["panels"] if p["type"] != "row"} == {uid}


def test_the_monitoring_profile_scrapes_serve_with_the_token() -> None:
    """Prometheus and Grafana run only in the monitoring profile, publish on loopback, mount
    files that exist, and Prometheus reads the token compose writes from LLMTAP_API_TOKEN."""
    compose = load_compose()
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        service = services[name]
        assert service["profiles"] == ["monitoring"]
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists(), volume
    scrape = _yaml(COMPOSE_DIR / "prometheus/prometheus.yml")["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["serve:8765"]
    token_file = scrape["authorization"]["credentials_file"]
    mounted = services["prometheus"]["configs"][0]
    assert mounted["target"] == token_file
    assert compose["configs"][mounted["source"]]["content"].startswith("${LLMTAP_API_TOKEN")
    provider = _yaml(COMPOSE_DIR / "grafana/provisioning/dashboards/llmtap.yaml")["providers"][0]
    assert (
        f"./grafana/dashboards:{provider['options']['path']}:ro" in services["grafana"]["volumes"]
    )


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
