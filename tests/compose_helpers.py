"""The compose deployment as the tests read it: compose/compose.yaml and the Dockerfile."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_DIR = REPO / "compose"


@cache
def _parsed_compose() -> dict[str, Any]:
    with (COMPOSE_DIR / "compose.yaml").open(encoding="utf-8") as stream:
        document: dict[str, Any] = yaml.safe_load(stream)
    return document


def load_compose() -> dict[str, Any]:
    """Return a fresh copy of compose/compose.yaml as loaded by PyYAML (anchors merged)."""
    return copy.deepcopy(_parsed_compose())


def dockerfile_entrypoint() -> list[str]:
    """Return the exec-form ENTRYPOINT of compose/Dockerfile."""
    for line in (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("ENTRYPOINT "):
            entrypoint: list[str] = json.loads(line.removeprefix("ENTRYPOINT "))
            return entrypoint
    raise AssertionError("compose/Dockerfile has no ENTRYPOINT")


def worker_services() -> dict[str, list[str]]:
    """Return each worker service's name -> the argv its container runs.

    The argv is the Dockerfile's ENTRYPOINT followed by the service's ``command``, for example
    ``{"cost": ["llmtap", "worker", "cost"], ...}``. Services built from the Dockerfile are
    workers, except ``serve``; image-only services (valkey) are not.
    """
    entrypoint = dockerfile_entrypoint()
    services = load_compose()["services"]
    return {
        name: [*entrypoint, *service["command"]]
        for name, service in services.items()
        if "build" in service and service["command"][0] == "worker"
    }
