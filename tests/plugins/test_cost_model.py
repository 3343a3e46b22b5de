"""Custom cost models: a model named by LLMTAP_COST_MODEL prices calls end to end, before the
catalogue, named in the pricing version; a model that raises or answers nonsense is contained
(the call returns, is unpriced and counted, one log line)."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
import redis

from llmtap.analyzers.pricing import CallUsage, CostCalculator
from llmtap.events import CallEvent, RollupEvent
from llmtap.producers.prices import load_pricing, resolve_cost_model
from llmtap.producers.profiler import Profiler
from llmtap.settings import Settings
from tests.plugins.models import half_price
from tests.producers.helpers import read_stream

AT = datetime(2026, 1, 1, tzinfo=UTC)
RESPONSE = {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1000, "completion_tokens": 200}}


def catalogue(backend: str = "openai", model: str = "gpt-4o-mini") -> float:
    """The catalogue price of RESPONSE's usage."""
    price = CostCalculator(at=AT).cost(backend, model, 1000, 200)
    assert price is not None
    return price


def _profiled(redis_url: str, model: str, calls: int = 2) -> Profiler:
    settings = Settings(sampling_rate=1.0, cost_model=model, rollup_interval_s=3600)
    p = Profiler(settings, redis_url=redis_url)
    ask = p.wrap(lambda: RESPONSE, backend="openai")
    assert [ask() for _ in range(calls)] == [RESPONSE] * calls
    assert p.flush()
    p.close()
    return p


def test_a_cost_model_prices_calls_end_to_end(redis_url: str, r: redis.Redis) -> None:
    """Call events and rollups carry the model's price, and the version names the model."""
    _profiled(redis_url, "tests.plugins.models:half_price")
    stream = read_stream(r)
    calls = [e for e in stream if isinstance(e, CallEvent)]
    rollups = [e for e in stream if isinstance(e, RollupEvent)]
    assert [c.estimated_cost_usd for c in calls] == [pytest.approx(catalogue() / 2)] * 2
    assert all(c.pricing_version.endswith("+model-half-price") for c in calls)
    rows = [row for rollup in rollups for row in rollup.rows]
    assert sum(row.cost_nanousd for row in rows) == 2 * round(catalogue() / 2 * 1e9)
    assert sum(row.unpriced_calls for row in rows) == 0


def test_a_raising_cost_model_is_contained_counted_and_logged_once(
    redis_url: str, r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The user's calls return, each is unpriced (counted in the rollup), one line is logged."""
    with caplog.at_level(logging.WARNING, logger="llmtap"):
        _profiled(redis_url, "tests.plugins.models:exploding", calls=3)
    lines = [rec.getMessage() for rec in caplog.records if "cost model" in rec.getMessage()]
    assert len(lines) == 1 and "exploding" in lines[0] and "ZeroDivisionError" in lines[0]
    stream = read_stream(r)
    calls = [e for e in stream if isinstance(e, CallEvent)]
    assert [c.estimated_cost_usd for c in calls] == [None] * 3
    rows = [row for e in stream if isinstance(e, RollupEvent) for row in e.rows]
    assert sum(row.unpriced_calls for row in rows) == sum(row.calls for row in rows) == 3


def test_a_model_that_cannot_load_falls_back_to_the_catalogue_in_one_line(
    redis_url: str, r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """LLMTAP_COST_MODEL naming nothing importable is one line naming the variable; calls are
    priced from the catalogue and the bad setting is counted."""
    with caplog.at_level(logging.WARNING, logger="llmtap"):
        p = _profiled(redis_url, "llmtap_no_such_module:price")
    lines = [rec.getMessage() for rec in caplog.records if "LLMTAP_COST_MODEL" in rec.getMessage()]
    assert len(lines) == 1 and "llmtap_no_such_module" in lines[0] and "\n" not in lines[0]
    assert p.stats()["bad_prices_file"] == 1
    calls = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert [c.estimated_cost_usd for c in calls] == [pytest.approx(catalogue())] * 2


def test_an_entry_point_cost_model_in_a_real_process(redis_url: str, r: redis.Redis) -> None:
    """The example package's ``negotiated-discount`` entry point, named by LLMTAP_COST_MODEL in
    an application's environment, discounts the catalogue price."""
    script = textwrap.dedent(
        """
        import llmtap
        ask = llmtap.profile(lambda: RESPONSE, backend="openai")
        print(ask() == RESPONSE)
        """
    ).replace("RESPONSE", repr(RESPONSE))
    env = {**os.environ, "LLMTAP_COST_MODEL": "negotiated-discount", "LLMTAP_DISCOUNT": "0.25",
           "LLMTAP_REDIS_URL": redis_url, "CS_PROFILING_SAMPLING_RATE": "1.0"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr
    calls = [e for e in read_stream(r) if isinstance(e, CallEvent)]
    assert [c.estimated_cost_usd for c in calls] == [pytest.approx(catalogue() * 0.75)]
    assert calls[0].pricing_version.endswith("+model-negotiated-discount")


class Answer:
    """A model that answers a fixed value (``fallback`` as given)."""

    def __init__(self, value: object, fallback: bool = True) -> None:
        self.value = value
        self.fallback = fallback
        self.name = "answer"

    def __call__(self, usage: CallUsage) -> float | None:
        return self.value  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("answer", "fallback", "expected"),
    [
        (0.5, True, 0.5),
        (0, True, 0.0),
        (None, True, "catalogue"),
        (None, False, None),
    ],
)
def test_the_model_wins_and_none_asks_the_catalogue_unless_told_not_to(
    answer: object, fallback: bool, expected: object
) -> None:
    """A USD answer wins; None falls back to the catalogue, or (fallback False) is unpriced."""
    calc = CostCalculator(at=AT, model=Answer(answer, fallback))
    want = catalogue() if expected == "catalogue" else expected
    got = calc.cost("openai", "gpt-4o-mini", 1000, 200)
    assert got == (pytest.approx(want) if want is not None else None)
    assert calc.model_errors == 0
    assert calc.version.endswith("+model-answer")


@pytest.mark.parametrize("answer", [math.nan, math.inf, -1.0, "0.1", True, [1.0]])
def test_an_answer_that_is_not_usd_is_unpriced_and_reported_once(answer: object) -> None:
    """NaN, infinity, negatives and non-numbers never become a price; one report, all counted."""
    reports: list[str] = []
    calc = CostCalculator(at=AT, model=Answer(answer), on_model_error=reports.append)
    assert [calc.cost("openai", "gpt-4o-mini", 1000, 200) for _ in range(3)] == [None] * 3
    assert calc.model_errors == 3
    assert len(reports) == 1 and "answer" in reports[0]


def test_a_reporter_that_raises_does_not_reach_the_call() -> None:
    """Even the log reporter failing leaves the call unpriced, not raising."""

    def bad_report(message: str) -> None:
        raise OSError("log disk full")

    calc = CostCalculator(at=AT, model=Answer(math.nan), on_model_error=bad_report)
    assert calc.cost("openai", "gpt-4o-mini", 1, 1) is None


def test_resolution_names_the_variable_and_accepts_callables_and_classes() -> None:
    """module:attr and entry-point names resolve; a class is instantiated; bad specs name
    LLMTAP_COST_MODEL."""
    assert resolve_cost_model("tests.plugins.models:half_price") is half_price
    model = resolve_cost_model("negotiated-discount")
    assert type(model).__name__ == "NegotiatedDiscount"
    for spec in ("llmtap_no_such_module:x", "tests.plugins.models:missing", "no-such-model",
                 "string:ascii_letters"):  # fmt: skip
        with pytest.raises(ValueError, match="LLMTAP_COST_MODEL"):
            resolve_cost_model(spec)
    version = load_pricing(Settings(cost_model="tests.plugins.models:half_price"), AT).version
    assert version.startswith("genai-prices-") and version.endswith("+model-half-price")
