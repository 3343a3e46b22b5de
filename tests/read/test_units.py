"""One units convention: JSON carries fractions, seconds and USD under one name per quantity in
every tool, the report and ``--json``; the commands show people %, ms and $."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from llmtap.read import tools
from tests.read.truth import NOW, Truth


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted path, value) of every field of a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", item
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, f"{path}[]")


def _documents(r: redis.Redis, session: str) -> dict[str, Any]:
    return {
        "status": tools.get_profiling_status(r),
        "dashboard": tools.get_performance_dashboard(r, 24, now=NOW),
        "cost": tools.get_cost_analysis_data(r, 24, now=NOW),
        "performance": tools.get_performance_analysis(r, 24, now=NOW),
        "insights": tools.get_optimization_insights(r, 24, now=NOW),
        "session": tools.get_session_profiling_analysis(r, session),
        "report": json.loads(tools.export_performance_report(r, 24, "json", now=NOW)["content"]),
    }


def test_rates_are_fractions_under_one_name_everywhere(r: redis.Redis, truth: Truth) -> None:
    """Every ``*_rate`` and ``*_share`` is a fraction; the error rate, success rate and
    generation speed are the same number under the same name in each document."""
    session = next(row.session for row in truth.rows() if row.session)
    docs = _documents(r, session)
    for name, doc in docs.items():
        for path, value in _walk(doc):
            if path.endswith(("_rate", "_share")) and not isinstance(value, dict):
                assert value is None or 0.0 <= value <= 1.0, f"{name}{path} = {value}"
            assert not path.endswith("_pct") or "budget" in path, f"{name}{path}"
    calls, errors = truth.sum_rows("calls"), truth.sum_rows("errors")
    dash = docs["dashboard"]
    assert dash["performance"]["error_rate"] == pytest.approx(errors / calls)
    assert dash["performance"]["success_rate"] == pytest.approx(1 - errors / calls)
    assert docs["performance"]["error_rates"]["error_rate"] == pytest.approx(errors / calls)
    assert docs["report"]["summary"]["error_rate"] == pytest.approx(errors / calls)
    speed = docs["performance"]["throughput"]["generation_tokens_per_s"]
    assert speed is not None and speed > 0
    assert dash["efficiency"]["generation_tokens_per_s"] == speed
    assert docs["report"]["throughput"]["generation_tokens_per_s"] == speed
    assert "output_tokens_per_s" not in dash["efficiency"]
    status = docs["status"]["statistics"]
    assert status["profiling_rate"] == status["profiled_calls"] / status["total_calls"]
    s_calls = truth.sum_rows("calls", session=session)
    s_errors = truth.sum_rows("errors", session=session)
    assert docs["session"]["summary"]["success_rate"] == (s_calls - s_errors) / s_calls


def _command(redis_url: str, *argv: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "llmtap.cli.main", *argv, "--url", redis_url],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _row(out: str, first: str) -> list[str]:
    """Return the cells of the table row whose first cell is ``first``."""
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│|┃]", line)]
        cells = [c for c in cells if c]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{out}")


def test_commands_show_ms_dollars_and_percentages(
    r: redis.Redis, redis_url: str, truth: Truth
) -> None:
    """``llmtap latency``, ``cost`` and ``status`` (real processes) show latency in ms, money
    with ``$`` and rates with ``%``."""
    hours = str((time.time() - NOW) / 3600 + 24)  # a window back to the seeded traffic
    latency = _command(redis_url, "latency", "--hours", hours)
    call = truth.calls[0]
    assert all(c.endswith(" ms") for c in _row(latency, call.backend)[-3:])
    assert _row(latency, call.model_name)[-1].endswith("%")
    cost = _command(redis_url, "cost", "--hours", hours)
    assert _row(cost, call.backend)[1].startswith("$")
    assert _row(cost, "month_to_date_usd")[1].startswith("$")
    status = _command(redis_url, "status")
    assert _row(status, "sampling rate")[1] == "10.0%"
    assert _row(status, "profiling_rate")[1].endswith("%")
