"""The README stays true to the code: every setting with its default, the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmtap.consumers.runtime.config import variables as worker_variables
from llmtap.settings import VARIABLES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _documented_default(name: str) -> str:
    match = re.search(rf"^\| `{name}` \| (.+?) \|", README, re.MULTILINE)
    assert match, f"{name} is missing from the README's configuration table"
    return match.group(1).strip("`")


def _shown(default: object) -> str:
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


@pytest.mark.parametrize("var", VARIABLES, ids=[v.env for v in VARIABLES])
def test_every_producer_setting_is_documented_with_its_default(var: object) -> None:
    """Each producer variable appears in the configuration table with its real default."""
    assert _documented_default(var.env) == _shown(var.default)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("env", "attr", "default"), worker_variables())
def test_every_worker_setting_is_documented_with_its_default(
    env: str, attr: str, default: object
) -> None:
    """Each worker variable appears in the configuration table with its real default."""
    assert _documented_default(env) == _shown(default)


def test_readme_gives_the_two_commands() -> None:
    """The README opens with `make demo` and `make test`."""
    head = README[:1500]
    assert "make demo" in head and "make test" in head
