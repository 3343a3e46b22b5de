"""The JSON rendering of a report is the text ``json.dumps(indent=2, sort_keys=True)`` gives
(compact C encoding, indented by msgspec), for any JSON-ready model."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtap.analyzers import report

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_models = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=40,
)


@given(st.dictionaries(st.text(), _models, max_size=6))
def test_render_json_is_json_dumps_indented(model: dict[str, Any]) -> None:
    """Byte for byte the standard library's indented, key-sorted text, newline-terminated:
    empty containers, escapes (non-ASCII, quotes, line separators) and float spellings
    (``1e-05``, ``1e+16``) included."""
    assert report.render_json(model) == json.dumps(model, indent=2, sort_keys=True) + "\n"


def test_render_json_refuses_nan() -> None:
    """A NaN or an infinity is an error, not invalid JSON."""
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError):
            report.render_json({"x": bad})
