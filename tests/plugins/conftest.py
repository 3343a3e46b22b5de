"""The plugin tests need the example plugin installed as a real package (``make`` installs it
with the project; by hand: ``pip install -e examples/llmtap-cost-by-tag``)."""

from __future__ import annotations

import pytest

from llmtap.consumers import registry


@pytest.fixture(autouse=True, scope="session")
def _example_plugin_installed() -> None:
    """Fail every plugin test with the fix when the example is not installed."""
    if "cost-by-tag" not in registry.plugin_names():
        pytest.fail(
            "the example plugin is not installed: run make (or "
            "pip install -e examples/llmtap-cost-by-tag)",
            pytrace=False,
        )
