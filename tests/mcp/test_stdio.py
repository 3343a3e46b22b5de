"""``llmtap mcp`` on stdio, driven by the SDK's own client: tools and schemas, every tool's
answer against the Python functions', yesterday's exact spend, reset, read-only, errors."""

from __future__ import annotations

import socket
import time
from typing import Any

import redis

from llmtap import tools
from llmtap.read import status
from llmtap.read.alerts import alerts_summary
from llmtap.settings import Settings
from tests.mcp.helpers import Seeded, call, differences, error_text, plain, stdio_session

NINE = {
    "get_profiling_status": set(),
    "get_performance_dashboard": {"hours_back", "include_cache_stats"},
    "get_cost_analysis_data": {"hours_back", "monthly_budget_usd", "top_n", "day"},
    "get_performance_analysis": {"hours_back"},
    "get_optimization_insights": {"hours_back"},
    "get_session_profiling_analysis": {"session_id", "limit"},
    "configure_profiling_settings": {
        "enabled", "level", "sampling_rate", "track_tokens", "track_costs", "track_memory",
        "track_network", "slow_call_s", "expensive_call_usd",
    },
    "reset_profiling_metrics": {"confirm"},
    "export_performance_report": {"hours_back", "format", "output_path"},
}  # fmt: skip
# The month-end projection extrapolates today's pace from the second it is asked.
MOMENT_KEYS = ("days_remaining", "projected_month_end_usd", "projection_low_usd",
               "projection_high_usd", "budget_exhausted_at")  # fmt: skip
CONTROL = {"list_alerts", "list_silences", "get_budgets", "get_pipeline_health"}
WRITES = {"configure_profiling_settings", "reset_profiling_metrics", "create_silence",
          "expire_silence"}  # fmt: skip


async def test_lists_the_nine_tools_and_the_control_plane_with_schemas(redis_url: str) -> None:
    """The nine original tools keep their argument names; every tool has a description and
    an object output schema; hours_back says its unit and default."""
    async with stdio_session(redis_url) as session:
        listed = {t.name: t for t in (await session.list_tools()).tools}
    assert set(listed) == set(NINE) | CONTROL | WRITES
    for name, args in NINE.items():
        assert set(listed[name].input_schema.get("properties", {})) == args, name
    for tool in listed.values():
        assert tool.description and len(tool.description) > 40, tool.name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
    hours = listed["get_cost_analysis_data"].input_schema["properties"]["hours_back"]
    assert hours["default"] == 24 and "hours" in hours["description"]
    assert listed["reset_profiling_metrics"].annotations.destructive_hint is True
    assert listed["get_session_profiling_analysis"].input_schema["required"] == ["session_id"]


async def test_every_read_tool_answers_as_the_python_function(
    r: redis.Redis, redis_url: str, seeded: Seeded
) -> None:
    """On seeded traffic each read tool's structured content equals llmtap.tools' result."""
    settings = Settings.from_env()
    async with stdio_session(redis_url) as session:
        got = {
            "status": await call(session, "get_profiling_status"),
            "dashboard": await call(session, "get_performance_dashboard", hours_back=24),
            "cost": await call(session, "get_cost_analysis_data", hours_back=6),
            "performance": await call(session, "get_performance_analysis", hours_back=6),
            "insights": await call(session, "get_optimization_insights", hours_back=48),
            "session": await call(session, "get_session_profiling_analysis", session_id="s-1"),
            "report": await call(session, "export_performance_report", hours_back=6),
            "alerts": await call(session, "list_alerts"),
            "health": await call(session, "get_pipeline_health"),
        }
    now = time.time()
    want = {
        "status": tools.get_profiling_status(r, settings),
        "dashboard": tools.get_performance_dashboard(r, 24, True, now=now, settings=settings),
        "cost": tools.get_cost_analysis_data(r, 6, now=now),
        "performance": tools.get_performance_analysis(r, 6, now=now),
        "insights": tools.get_optimization_insights(r, 48, now=now),
        "session": tools.get_session_profiling_analysis(r, "s-1", limit=50),
        "report": tools.export_performance_report(r, 6, now=now, settings=settings),
        "alerts": alerts_summary(r, now - 24 * 3600, now, settings),
        "health": status.pipeline_health(r),
    }
    for name, answer in want.items():
        assert not differences(_stable(name, got[name]), _stable(name, answer)), name
    assert got["cost"]["total_calls"] == seeded.recent_calls > 0


def _stable(name: str, answer: dict[str, Any]) -> Any:
    """The answer without what depends on the second it was asked (the report's rendering
    embeds its time; the burn rate's month projection uses the moment of the call)."""
    out = plain(answer)
    if name == "report":
        out.pop("content")
        out.pop("period")
        out["summary"].pop("projected_month_end_usd")
    if name in ("cost", "dashboard"):
        cost = out.get("cost_analysis", out)
        for key in MOMENT_KEYS:
            cost.get("burn_rate", {}).pop(key, None)
    return out


async def test_yesterdays_spend_by_model_is_exact(redis_url: str, seeded: Seeded) -> None:
    """'What did we spend yesterday, and on which model?': day='yesterday' gives each model's
    exact nano-USD, equal to the seeded rollups' ground truth, and the text says it too."""
    async with stdio_session(redis_url) as session:
        answer = await session.call_tool("get_cost_analysis_data", {"day": "yesterday"})
        dated = await call(session, "get_cost_analysis_data", day=seeded.yesterday)
    got = answer.structured_content
    by_model = {m: row["cost_nanousd"] for m, row in got["cost_by_model"].items()}
    assert by_model == seeded.yesterday_cost_by_model
    assert got["total_cost_nanousd"] == sum(seeded.yesterday_cost_by_model.values())
    assert dated == got
    text = answer.content[0].text
    top = max(by_model, key=lambda m: by_model[m])
    assert f"{top} ${got['cost_by_model'][top]['cost_usd']:.6f}" in text


async def test_reset_deletes_nothing_without_confirm(
    r: redis.Redis, redis_url: str, seeded: Seeded
) -> None:
    """Without confirm the answer lists what would go and every key stays; with it they go."""
    before = r.dbsize()
    async with stdio_session(redis_url) as session:
        dry = await call(session, "reset_profiling_metrics")
        assert r.dbsize() == before and dry["deleted"] == 0 and dry["keys"] > 0
        assert "confirm" in dry["message"]
        done = await call(session, "reset_profiling_metrics", confirm=True)
    assert done["deleted"] > 0 and done["keys"] == dry["keys"]
    assert r.dbsize() < before


async def test_configure_validates_and_returns_the_effective_settings(
    r: redis.Redis, redis_url: str
) -> None:
    """A good change is written and echoed; a bad value is a tool error that writes nothing."""
    async with stdio_session(redis_url) as session:
        got = await call(session, "configure_profiling_settings", sampling_rate=0.25)
        assert got["sampling_rate"] == 0.25 and got["enabled"] is True
        bad = await error_text(session, "configure_profiling_settings", sampling_rate=2)
        assert "sampling_rate" in bad
        bad_level = await error_text(session, "configure_profiling_settings", level="loud")
        assert "level" in bad_level
        shown = await call(session, "configure_profiling_settings")
    assert shown["sampling_rate"] == 0.25
    assert tools.get_profiling_status(r)["sampling_rate"] == 0.25


async def test_read_only_mode_hides_every_tool_that_writes(redis_url: str) -> None:
    """LLMTAP_MCP_READONLY=1 lists no write tool, and calling one is an error."""
    async with stdio_session(redis_url, LLMTAP_MCP_READONLY="1") as session:
        names = {t.name for t in (await session.list_tools()).tools}
        assert names == set(NINE) - WRITES | CONTROL
        refused = await session.call_tool("reset_profiling_metrics", {"confirm": True})
        written = await error_text(
            session, "export_performance_report", output_path="out.md", format="md"
        )
    assert refused.is_error
    assert "read-only" in written


async def test_bad_arguments_and_unknown_session_are_tool_errors(redis_url: str) -> None:
    """Out-of-range values name the field; an unknown session says so; the server lives on."""
    async with stdio_session(redis_url) as session:
        assert "hours_back" in await error_text(session, "get_cost_analysis_data", hours_back=-1)
        assert "day" in await error_text(session, "get_cost_analysis_data", day="2099-01-01")
        assert "format" in await error_text(session, "export_performance_report", format="pdf")
        unknown = await error_text(session, "get_session_profiling_analysis", session_id="nope")
        assert "unknown session 'nope'" in unknown
        assert await call(session, "get_profiling_status")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_down_is_a_tool_error_without_the_password() -> None:
    """With nothing listening at the URL, tools fail with 'cannot reach Redis' (password
    hidden) and the server keeps answering."""
    url = f"redis://:s3cret@127.0.0.1:{_closed_port()}/0"
    async with stdio_session(url) as session:
        first = await error_text(session, "get_profiling_status")
        second = await error_text(session, "get_cost_analysis_data", day="yesterday")
        assert len((await session.list_tools()).tools) > 9
    for text in (first, second):
        assert "cannot reach Redis" in text and "s3cret" not in text and "***" in text
