"""Tests for llmtap.producers.prices: reading the override file into the producer's pricing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import genai_prices
import pytest

from llmtap.analyzers.pricing import PricingError
from llmtap.producers.prices import load_pricing, read_overrides
from llmtap.settings import Settings

AT = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
OVERRIDES = {"openai/gpt-4o": {"input_per_mtok": 2.0, "output_per_mtok": 8.0}}


def write_overrides(tmp_path: Path, document: Any) -> str:
    """Write an override file and return its path."""
    path = tmp_path / "prices.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_version_names_catalogue_and_overrides(tmp_path: Path) -> None:
    """The version names the genai-prices release and a hash of the override file."""
    path = write_overrides(tmp_path, OVERRIDES)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    assert load_pricing(Settings(), AT).version == f"genai-prices-{genai_prices.__version__}"
    assert load_pricing(Settings(prices_file=path), AT).version == (
        f"genai-prices-{genai_prices.__version__}+overrides-{digest}"
    )


@pytest.mark.parametrize(
    ("document", "fragments"),
    [
        ("{not json", ["not valid JSON"]),
        ('["openai/gpt-4o"]', ["top level must be a JSON object"]),
        ('{"openai/gpt-4o": {"input_per_mtok": 1}, "openai/gpt-4o": {}}', ["duplicate", "gpt-4o"]),
        ('{"openai/gpt-4o": {"input_per_mtok": NaN}}', ["NaN is not a number"]),
        ({"openai/gpt-4o": {"input_per_mtok": 1, "colour": 2}}, ["'openai/gpt-4o'", "'colour'"]),
        ({"openai/gpt-4o": {"input_per_mtok": -1}}, ["'openai/gpt-4o'", "input_per_mtok", ">= 0"]),
        ({"mycorp/m": {"output_per_mtok": "3"}}, ["'mycorp/m'", "output_per_mtok", "number"]),
        ({"mycorp/m": {"per_hour": True}}, ["'mycorp/m'", "per_hour", "number"]),
        ({"mycorp/m": {"per_hour": 10**400}}, ["'mycorp/m'", "per_hour", "finite"]),
        ({"mycorp/m": 3.0}, ["'mycorp/m'", "JSON object"]),
        ({"mycorp/m": {}}, ["'mycorp/m'", "no rates"]),
        ({"gpt-4o": {"input_per_mtok": 1}}, ["'gpt-4o'", "backend/model"]),
        ({"OpenAI/GPT-4o": {"input_per_mtok": 1}, "openai/gpt-4o": {}}, ["duplicates"]),
    ],
)
def test_bad_override_file_is_rejected(tmp_path: Path, document: Any, fragments: list[str]) -> None:
    """A bad override file raises PricingError naming the file, the entry and the reason."""
    path = write_overrides(tmp_path, document)
    with pytest.raises(PricingError) as excinfo:
        read_overrides(path)
    message = str(excinfo.value)
    assert path in message
    for fragment in fragments:
        assert fragment in message


def test_unreadable_override_file_is_rejected(tmp_path: Path) -> None:
    """A missing override file raises PricingError naming the path."""
    path = str(tmp_path / "missing.json")
    with pytest.raises(PricingError, match="cannot read"):
        read_overrides(path)
