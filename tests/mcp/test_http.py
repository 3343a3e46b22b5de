"""The MCP server over streamable HTTP on loopback with the SDK's client: the bearer token,
tools against the Python functions, silences, budgets and the report resource."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx2
import pytest
import redis
from mcp_types import TextResourceContents

from llmtap import tools
from llmtap.listen import required_token
from llmtap.read import silences
from llmtap.settings import SettingsError
from tests.mcp.helpers import Seeded, call, differences, error_text, http_server, http_session

TOKEN = "t0ken-for-tests"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "t", "version": "0"}},
}  # fmt: skip


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_missing_or_wrong_token_is_401(redis_url: str, header: str | None) -> None:
    """With a token configured, a request without it, or with another, gets 401 and JSON."""
    headers = {"Accept": "application/json, text/event-stream"}
    if header:
        headers["Authorization"] = header
    with http_server(redis_url, TOKEN) as url:
        got = httpx2.post(url, json=INIT, headers=headers, timeout=30)
    assert got.status_code == 401
    assert "bearer token" in got.json()["error"]


def test_a_token_is_required_off_loopback() -> None:
    """Listening off loopback without LLMTAP_API_TOKEN is refused; loopback may go without."""
    with pytest.raises(SettingsError, match="LLMTAP_API_TOKEN"):
        required_token("0.0.0.0", None)
    assert required_token("127.0.0.1", None) is None
    assert required_token("0.0.0.0", TOKEN) == TOKEN


async def test_tools_over_http_with_the_token(
    r: redis.Redis, redis_url: str, seeded: Seeded
) -> None:
    """With the right token the client initializes, lists the tools and gets yesterday's
    cost exactly as llmtap.tools computes it."""
    with http_server(redis_url, TOKEN) as url:
        async with http_session(url, TOKEN) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            cost = await call(session, "get_cost_analysis_data", day="yesterday")
            status = await call(session, "get_profiling_status")
    assert {"get_cost_analysis_data", "create_silence", "get_budgets"} <= names
    now = time.time()
    want = tools.get_cost_analysis_data(r, 24, now=now - now % 86_400)
    assert cost["cost_by_model"] == json.loads(json.dumps(want["cost_by_model"]))
    assert {m: row["cost_nanousd"] for m, row in cost["cost_by_model"].items()} == (
        seeded.yesterday_cost_by_model
    )
    assert not differences(status, json.loads(json.dumps(tools.get_profiling_status(r))))


async def test_silence_needs_a_comment_and_a_bounded_duration(
    r: redis.Redis, redis_url: str
) -> None:
    """create_silence refuses no comment and more than 30 days; a good one is listed, the
    alerts worker's index holds it, and expire_silence ends it (twice is an error)."""
    with http_server(redis_url) as url:
        async with http_session(url) as session:
            assert "comment" in await error_text(
                session, "create_silence", matchers={"rule": "slow"}, comment=" "
            )
            assert "duration_minutes" in await error_text(
                session, "create_silence", matchers={"rule": "slow"}, comment="x",
                duration_minutes=30 * 24 * 60 + 1,
            )  # fmt: skip
            made = await call(
                session, "create_silence", matchers={"rule": "slow"}, comment="deploy",
                duration_minutes=30,
            )  # fmt: skip
            listed = await call(session, "list_silences")
            assert [s["id"] for s in silences.list_silences(r, time.time())] == [made["id"]]
            assert listed["silences"] == [made]
            assert made["ends_at"] - made["starts_at"] == 1800
            await call(session, "expire_silence", silence_id=made["id"])
            again = await error_text(session, "expire_silence", silence_id=made["id"])
    assert "unknown silence" in again
    assert silences.list_silences(r, time.time()) == []


async def test_budgets_show_the_budget_rules_and_their_use(
    r: redis.Redis, redis_url: str, seeded: Seeded, tmp_path: Path
) -> None:
    """get_budgets lists each budget rule of the rules file with the month's spend in its
    scope against its budget; the ad hoc monthly_budget_usd sets the projection's budget."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - {name: month, kind: monthly_budget, budget_usd: 100}\n"
        "  - {name: gpt4o, kind: monthly_budget, budget_usd: 10, model: gpt-4o}\n"
        "  - {name: tenants, kind: projected_month_end_above, budget_usd: 50, group_by: [tenant]}\n"
    )
    with http_server(redis_url, rules_path=str(rules)) as url:
        async with http_session(url) as session:
            got = await call(session, "get_budgets", monthly_budget_usd=1000)
    by_rule = {b["rule"]: b for b in got["budgets"]}
    assert set(by_rule) == {"month", "gpt4o", "tenants"}
    tenants = [b["scope"] for b in got["budgets"] if b["rule"] == "tenants"]
    assert tenants == [{"tenant": "acme"}, {"tenant": "globex"}]
    month = by_rule["month"]
    assert month["spent_usd"] == pytest.approx(got["month_to_date_usd"])
    assert month["used_pct"] == pytest.approx(month["spent_usd"])  # a $100 budget
    assert month["thresholds_crossed"] == [t for t in (50, 80, 100) if month["used_pct"] >= t]
    assert by_rule["gpt4o"]["scope"] == {"model": "gpt-4o"}
    assert 0 < by_rule["gpt4o"]["spent_usd"] < month["spent_usd"]
    assert got["projection"]["budget_usd"] == 1000


async def test_the_latest_report_is_a_markdown_resource(redis_url: str, seeded: Seeded) -> None:
    """llmtap://report/latest.md is the last 24 hours' report in Markdown."""
    with http_server(redis_url) as url:
        async with http_session(url) as session:
            listed = {str(res.uri) for res in (await session.list_resources()).resources}
            got = await session.read_resource("llmtap://report/latest.md")
    assert "llmtap://report/latest.md" in listed
    block = got.contents[0]
    assert isinstance(block, TextResourceContents) and block.text.startswith("#")
