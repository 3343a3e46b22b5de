"""compose/cluster.yaml: valid Compose, six cluster nodes formed once, sharded workers."""

from __future__ import annotations

from typing import Any

import jsonschema
import yaml

from llmtap.connection import is_cluster
from llmtap.settings import Settings
from tests.compose_helpers import COMPOSE_DIR
from tests.test_compose import interpolate, validator

__all__ = ["validator"]  # the Compose Specification schema fixture


def cluster_compose() -> dict[str, Any]:
    with (COMPOSE_DIR / "cluster.yaml").open(encoding="utf-8") as stream:
        document: dict[str, Any] = yaml.safe_load(stream)
    return document


def test_cluster_compose_matches_the_compose_schema(validator: jsonschema.Draft7Validator) -> None:
    """cluster.yaml is valid Compose, as written and with the defaults interpolated."""
    validator.validate(cluster_compose())
    validator.validate(interpolate(cluster_compose(), {}))


def test_six_cluster_nodes_and_a_one_shot_init() -> None:
    """Six valkey nodes run cluster-enabled with AOF; cluster-init waits for all of them,
    runs the shipped script once, and every worker waits for it to complete."""
    services = interpolate(cluster_compose(), {})["services"]
    nodes = [name for name in services if name.startswith("valkey-")]
    assert len(nodes) == 6
    for name in nodes:
        command = services[name]["command"]
        assert command[command.index("--cluster-enabled") + 1] == "yes"
        assert command[command.index("--appendonly") + 1] == "yes"
    init = services["cluster-init"]
    assert set(init["depends_on"]) == set(nodes)
    assert (COMPOSE_DIR / "config" / "cluster-init.sh").is_file()
    for name in ("cost", "latency", "reports"):
        condition = services[name]["depends_on"]["cluster-init"]["condition"]
        assert condition == "service_completed_successfully"


def test_workers_get_a_cluster_url_and_shards() -> None:
    """The workers' default environment is a valid cluster URL and LLMTAP_SHARDS=3."""
    services = interpolate(cluster_compose(), {})["services"]
    env = services["cost"]["environment"]
    settings = Settings.from_env(
        {k: str(v) for k, v in env.items() if k.startswith(("LLMTAP_R", "LLMTAP_S"))}
    )
    assert is_cluster(settings.redis_url)
    assert settings.shards == 3
