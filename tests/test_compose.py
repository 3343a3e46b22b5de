"""Checks of the compose deployment in compose/: valid Compose, healthy workers, settings in sync.

No Docker engine runs here, so compose.yaml is validated against the Compose Specification's
JSON Schema and its services are checked field by field instead of being run.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from llmtap.analyzers.rules import default_rules, parse_rules
from llmtap.consumers.alerts.evaluator import tick_from_env
from llmtap.consumers.alerts.rules_file import rules_from_env
from llmtap.consumers.notify.config import receivers_from_env
from llmtap.consumers.reports import ReportConfig
from llmtap.consumers.runtime import config as worker_config
from llmtap.settings import VARIABLES, Settings
from tests.compose_helpers import (
    COMPOSE_DIR,
    REPO,
    dockerfile_entrypoint,
    load_compose,
    worker_services,
)

HERE = Path(__file__).resolve()
WORKERS = ("cost", "latency", "alerts", "notifier", "sessions", "reports")
SCHEMA_NAME = "shared/data/compose-spec.schema.json"
# ${NAME} and ${NAME:-default}: the only interpolation forms compose.yaml uses.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Return ``node`` with ``${NAME}`` and ``${NAME:-default}`` replaced as Compose does."""
    if isinstance(node, str):
        return _VARIABLE.sub(lambda m: env.get(m["name"]) or m["default"] or "", node)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return node


def _variables(node: Any) -> set[str]:
    """Return the names of the variables that ``node`` interpolates."""
    if isinstance(node, str):
        return {match["name"] for match in _VARIABLE.finditer(node)}
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    return set().union(*(_variables(child) for child in children))


def _schema_path() -> Path | None:
    candidates = [HERE.parents[2] / SCHEMA_NAME, HERE.parents[1] / ".." / SCHEMA_NAME]
    if configured := os.environ.get("LLMTAP_COMPOSE_SCHEMA"):
        candidates.insert(0, Path(configured))
    return next((path for path in candidates if path.is_file()), None)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    """A validator for the Compose Specification schema (draft-07, as its $schema says)."""
    path = _schema_path()
    if path is None:
        pytest.skip(f"compose schema not found: no {SCHEMA_NAME} beside the repository")
    schema = json.loads(path.read_text(encoding="utf-8"))
    # Its $schema is spelled "https://json-schema.org/draft-07/schema", which jsonschema does
    # not recognise (it would warn and fall back to the latest draft): name the draft.
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _services() -> dict[str, Any]:
    services: dict[str, Any] = load_compose()["services"]
    return services


def _env_example() -> str:
    return (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8")


def _shown_value(name: str) -> str | None:
    """Return the value of the first ``NAME=value`` line (commented or not) in .env.example."""
    match = re.search(rf"^#? ?{name}=(.*)$", _env_example(), flags=re.MULTILINE)
    return None if match is None else match.group(1).strip()


# --- compose.yaml ----------------------------------------------------------------------------


def test_compose_file_matches_the_compose_schema(validator: jsonschema.Draft7Validator) -> None:
    """compose.yaml is valid Compose, as written and after interpolating the defaults."""
    validator.validate(load_compose())
    validator.validate(interpolate(load_compose(), {}))


def test_schema_rejects_what_compose_would(validator: jsonschema.Draft7Validator) -> None:
    """The validation has teeth: a misspelt service key and a bad condition fail it."""
    document = load_compose()
    document["services"]["cost"]["restart_policy"] = "always"
    assert not validator.is_valid(document)
    document = load_compose()
    document["services"]["cost"]["depends_on"]["valkey"]["condition"] = "healthy"
    assert not validator.is_valid(document)


def test_replicas_come_from_the_environment(validator: jsonschema.Draft7Validator) -> None:
    """replicas is a ${VAR:-1} string (the schema allows it) that becomes the number set."""
    services = _services()
    for name in WORKERS:
        replicas = services[name]["deploy"]["replicas"]
        assert replicas == f"${{LLMTAP_{name.upper()}_REPLICAS:-1}}"
        assert interpolate(replicas, {}) == "1"
    scaled = interpolate(load_compose(), {"LLMTAP_COST_REPLICAS": "3"})
    validator.validate(scaled)
    assert scaled["services"]["cost"]["deploy"]["replicas"] == "3"


def test_every_worker_has_a_service() -> None:
    """There is one service per worker kind, and each runs `llmtap worker <name>`."""
    assert worker_services() == {name: ["llmtap", "worker", name] for name in WORKERS}


@pytest.mark.parametrize("name", WORKERS)
def test_worker_healthcheck_runs_the_health_command(name: str) -> None:
    """Each worker's healthcheck runs `llmtap worker health <its name>`, with timings set."""
    healthcheck = _services()[name]["healthcheck"]
    assert healthcheck["test"] == ["CMD", "llmtap", "worker", "health", name]
    assert {"interval", "timeout", "retries", "start_period"} <= healthcheck.keys()


@pytest.mark.parametrize("name", WORKERS)
def test_worker_restarts_and_waits_for_a_healthy_valkey(name: str) -> None:
    """Each worker restarts unless stopped and starts only once valkey is healthy."""
    service = _services()[name]
    assert service["restart"] == "unless-stopped"
    assert service["depends_on"]["valkey"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_reads_redis_url_and_optional_env_file(name: str) -> None:
    """Each worker defaults to the bundled valkey, overridable from an optional .env."""
    service = _services()[name]
    redis_url = service["environment"]["LLMTAP_REDIS_URL"]
    assert interpolate(redis_url, {}) == "redis://valkey:6379/0"
    assert interpolate(redis_url, {"LLMTAP_REDIS_URL": "rediss://h:6380/0"}) == "rediss://h:6380/0"
    assert service["env_file"] == [{"path": ".env", "required": False}]


@pytest.mark.parametrize("name", WORKERS)
def test_worker_builds_from_the_repository(name: str) -> None:
    """The build context is the repository root and the Dockerfile path exists inside it."""
    build = _services()[name]["build"]
    context = (COMPOSE_DIR / build["context"]).resolve()
    assert context == REPO
    assert (context / "pyproject.toml").is_file()
    assert (context / build["dockerfile"]).is_file()


def test_valkey_persists_and_reports_health() -> None:
    """valkey runs with AOF on, keeps /data on a volume and has a ping healthcheck."""
    valkey = _services()["valkey"]
    command = valkey["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    volume = next(item for item in valkey["volumes"] if item.endswith(":/data"))
    assert volume.split(":")[0] in load_compose()["volumes"]
    assert valkey["healthcheck"]["test"][-1] == "ping"


# --- .env.example ----------------------------------------------------------------------------


@pytest.mark.parametrize("var", VARIABLES, ids=[var.env for var in VARIABLES])
def test_env_example_shows_every_setting_with_its_default(var: Any) -> None:
    """Every variable of llmtap.settings is in .env.example, showing its default."""
    shown = _shown_value(var.env)
    assert shown is not None, f"{var.env} is missing from compose/.env.example"
    if var.default is not None and shown:
        assert var.parse(shown) == var.default


@pytest.mark.parametrize(
    ("name", "default"), [(name, default) for name, _, default in worker_config.variables()]
)
def test_env_example_shows_every_worker_variable_with_its_default(name: str, default: Any) -> None:
    """Every variable of llmtap.consumers.runtime.config is in .env.example, showing its default."""
    assert _shown_value(name) == str(default), f"compose/.env.example: {name}={default}"


def test_env_example_covers_compose_and_worker_variables() -> None:
    """Every ${VAR} of compose.yaml, and each worker-only setting, is in .env.example."""
    names = _variables(load_compose()) | {
        "LLMTAP_ALERT_RULES",
        "LLMTAP_SLACK_WEBHOOK_URL",
        "LLMTAP_REPORT_SCHEDULE",
    }
    missing = sorted(name for name in names if _shown_value(name) is None)
    assert not missing, f"missing from compose/.env.example: {missing}"


def test_env_example_shows_a_tls_redis_url_with_a_password() -> None:
    """The example shows how to reach a password-protected Redis over TLS (as an example line:
    the default is the bundled valkey)."""
    assert re.search(r"^# e\.g\. LLMTAP_REDIS_URL=rediss://[^:@/]+:[^@/]+@", _env_example(), re.M)


# Everything a worker builds from its environment: a variable at its default changes none of it.
_CONFIG_BUILDERS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "settings": Settings.from_env,
    "runtime": worker_config.RuntimeConfig.from_env,
    "retention": worker_config.Retention.from_env,
    "reports": ReportConfig.from_env,
    "alert tick": tick_from_env,
    "alert rules": rules_from_env,
    "receivers": receivers_from_env,
}


def _commented_defaults() -> list[tuple[str, str]]:
    """Every ``# NAME=value`` line of .env.example (``# e.g.`` lines are examples), unquoted."""
    pairs = re.findall(r"^# ([A-Z][A-Z0-9_]*)=(.*)$", _env_example(), flags=re.MULTILINE)
    return [(name, value.strip().removeprefix('"').removesuffix('"')) for name, value in pairs]


def _compose_defaults() -> dict[str, str]:
    """Each variable compose.yaml interpolates with a ``${NAME:-default}``, and its default."""
    text = (COMPOSE_DIR / "compose.yaml").read_text(encoding="utf-8")
    return {m["name"]: m["default"] for m in _VARIABLE.finditer(text) if m["default"] is not None}


def _read_by_llmtap(name: str) -> bool:
    """Whether the package names the variable (a typo in .env.example names nothing)."""
    sources = (path.read_text(encoding="utf-8") for path in (REPO / "llmtap").rglob("*.py"))
    return any(f'"{name}"' in text or f"'{name}'" in text for text in sources)


@pytest.mark.parametrize(("name", "shown"), _commented_defaults(), ids=lambda v: str(v)[:40])
def test_every_commented_value_is_the_real_default(name: str, shown: str) -> None:
    """A commented value in .env.example is what the workers use when the variable is unset:
    compose.yaml's ${NAME:-default} where it sets one, else the code's default."""
    compose = _compose_defaults()
    if name in compose:
        assert shown == compose[name], f"compose.yaml defaults {name} to {compose[name]!r}"
        return
    assert _read_by_llmtap(name), f"{name}: no module of llmtap reads it"
    unset = {label: build({}) for label, build in _CONFIG_BUILDERS.items()}
    for label, build in _CONFIG_BUILDERS.items():
        assert build({name: shown}) == unset[label], f"{name}={shown!r} is not the {label} default"


def test_commented_defaults_check_has_teeth() -> None:
    """A value that is not the default changes what a worker builds (the old report schedule)."""
    changed = ReportConfig.from_env(
        {"LLMTAP_REPORT_SCHEDULE": "daily=0 8 * * *;weekly=0 8 * * mon"}
    )
    assert changed != ReportConfig.from_env({})
    assert _read_by_llmtap("LLMTAP_REPORT_SCHEDULE") and not _read_by_llmtap("LLMTAP_NO_SUCH_VAR")


def test_env_example_says_rules_are_added_to_the_defaults() -> None:
    """.env.example says a rules file adds to the default rules, as rules_from_env does."""
    text = _env_example()
    assert "added to the default rules" in text
    assert "replacing the defaults" not in text


# --- compose/config/ -------------------------------------------------------------------------


def test_config_directory_ships_a_valid_example_rules_file() -> None:
    """compose/config/ (mounted at /etc/llmtap) exists with alerts.yaml, which the real loader
    reads: the default rules followed by the file's, every file rule parsed."""
    mount = next(v for v in _services()["alerts"]["volumes"] if v.endswith(":/etc/llmtap:ro"))
    config = (COMPOSE_DIR / mount.split(":")[0]).resolve()
    assert config == COMPOSE_DIR / "config" and config.is_dir()
    path = config / "alerts.yaml"
    settings = Settings()
    defaults = [rule.name for rule in default_rules(settings)]
    rules = rules_from_env({"LLMTAP_ALERT_RULES": str(path)}, settings)
    names = [rule.name for rule in rules]
    assert names[: len(defaults)] == defaults
    assert len(names) > len(defaults)
    parse_rules(path.read_text(encoding="utf-8"), str(path))  # the parser itself, strict
    assert receivers_from_env({"LLMTAP_ALERT_RULES": str(path)}) == []


def test_env_example_rules_path_is_the_shipped_file() -> None:
    """The example LLMTAP_ALERT_RULES path is config/alerts.yaml as the workers see it."""
    match = re.search(r"^# e\.g\. LLMTAP_ALERT_RULES=/etc/llmtap/(\S+)$", _env_example(), re.M)
    assert match is not None
    assert (COMPOSE_DIR / "config" / match.group(1)).is_file()


# --- reports ---------------------------------------------------------------------------------


def test_reports_are_written_to_a_volume_by_default() -> None:
    """The reports service sets LLMTAP_REPORT_DIR to where the reports volume is mounted, and
    the image creates that directory for the non-root user (Docker copies its ownership)."""
    service = _services()["reports"]
    directory = interpolate(service["environment"]["LLMTAP_REPORT_DIR"], {})
    assert ReportConfig.from_env({"LLMTAP_REPORT_DIR": directory}).directory == directory
    mounts = dict(reversed(v.split(":")[:2]) for v in service["volumes"])
    assert mounts[directory] in load_compose()["volumes"]
    assert interpolate(service["environment"]["LLMTAP_REDIS_URL"], {}) == "redis://valkey:6379/0"
    assert any(v.endswith(":/etc/llmtap:ro") for v in service["volumes"])
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(
        rf"^RUN mkdir -p {re.escape(directory)} && chown -R 10001:10001 ", dockerfile, re.M
    )


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_installs_the_workers_extra_as_a_non_root_user() -> None:
    """The image is python:3.11-slim with `.[workers,serve]`, runs as non-root, enters `llmtap`."""
    text = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert "pip install '.[workers,serve]'" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert dockerfile_entrypoint() == ["llmtap"]


def test_dockerfile_copies_what_the_package_build_needs() -> None:
    """Every plain COPY source exists in the build context, and the readme is copied too."""
    text = (COMPOSE_DIR / "Dockerfile").read_text(encoding="utf-8")
    sources = [
        source for line in re.findall(r"^COPY (.+)$", text, re.M) for source in line.split()[:-1]
    ]
    plain = [source for source in sources if "*" not in source]
    assert {"pyproject.toml", "llmtap"} <= set(plain)
    assert all((REPO / source).exists() for source in plain), plain
    with (REPO / "pyproject.toml").open("rb") as stream:
        readme = tomllib.load(stream)["project"]["readme"]
    assert any(fnmatch.fnmatch(readme, source) for source in sources)
