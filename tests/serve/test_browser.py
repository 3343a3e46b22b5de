"""The dashboard in headless Chromium (Debian's chromium + chromedriver through selenium): each
page shows the tool functions' numbers and drawn charts, silencing from the page creates the
silence, live refresh shows new calls, and no page logs a console error. A screenshot of each
page is saved under LLMTAP_SCREENSHOT_DIR (default: a temporary directory, printed)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from llmtap import tools
from llmtap.read.silences import list_silences
from llmtap.serve.routes import today_hours
from tests.consumer_helpers import wait_for
from tests.serve.conftest import SCREENSHOTS, Seeded, ServeThread, seed_traffic

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HAVE_BROWSER = bool(shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER))
pytestmark = pytest.mark.skipif(
    not HAVE_BROWSER,
    reason="BROWSER TESTS NOT RUN: no /usr/bin/chromium or /usr/bin/chromedriver "
    "(apt-get install chromium chromium-driver; .ci/run does this)",
)


@pytest.fixture(scope="session")
def shots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The screenshot directory; its path is printed in the run's summary."""
    configured = os.environ.get("LLMTAP_SCREENSHOT_DIR")
    where = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    where.mkdir(parents=True, exist_ok=True)
    request.config.stash[SCREENSHOTS] = where
    return where


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium driven by the system chromedriver (nothing is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,1100",
    ):
        options.add_argument(flag)  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser: Any, serve: ServeThread, seeded: Seeded) -> Any:
    """The browser on the dashboard (24 h range, live) over the seeded traffic."""
    browser.get(serve.url + "/")
    browser.execute_script("localStorage.clear(); sessionStorage.clear();")
    return browser


def open_page(driver: Any, name: str) -> None:
    """Go to a page and wait until it has loaded its data once."""
    driver.execute_script("document.body.dataset.updated = ''; location.hash = arguments[0];",
                          "#" + name)  # fmt: skip
    try:
        wait_for(lambda: driver.execute_script("return document.body.dataset.updated") != "",
                 deadline_s=30, poll_s=0.05)  # fmt: skip
    except AssertionError:
        error = driver.find_element("id", "error").text
        raise AssertionError(
            f"page {name} did not load: {error!r} {console_errors(driver)}"
        ) from None


def fresh(read: Callable[[], T]) -> T:
    """``read()`` the page again while the elements it found are replaced under it: the live
    refresh re-renders tables, so a row found just before a refresh is stale by the time its
    cells are read."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(20):
        try:
            return read()
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError("the page kept replacing the element for a second")


def value(driver: Any, name: str) -> float:
    """The raw number behind a card (its data-value), read in one script: the page re-renders
    its cards at every refresh, so an element found first and read after may be gone."""
    raw = driver.execute_script(
        "return document.querySelector(arguments[0]).dataset.value", f'[data-metric="{name}"]'
    )
    return float(raw)


def points(driver: Any, chart: str) -> int:
    """The data points drawn in a chart."""
    return len(driver.find_elements("css selector", f'svg[data-chart="{chart}"] .pt'))


def rows(driver: Any, table: str) -> list[list[str]]:
    """The cells of a table's body rows."""

    def read() -> list[list[str]]:
        found = driver.find_elements("css selector", f'table[data-table="{table}"] tbody tr')
        return [[td.text for td in tr.find_elements("css selector", "td")] for tr in found]

    return fresh(read)


def console_errors(driver: Any) -> list[str]:
    """The browser's console errors since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def shoot(driver: Any, shots: Path, name: str) -> None:
    """Save a screenshot of the page."""
    driver.save_screenshot(str(shots / f"{name}.png"))


def test_overview_shows_the_tools_numbers_and_charts(
    r: redis.Redis, page: Any, shots: Path
) -> None:
    """Today's and this month's cost, calls/min, error rate and percentiles equal the tools';
    the latency and calls charts have data points; the firing alert is listed."""
    open_page(page, "overview")
    now = time.time()
    dash = tools.get_performance_dashboard(r, 24, False, now=now)
    today = tools.get_cost_analysis_data(r, today_hours(now), now=now)
    perf = dash["performance"]
    assert value(page, "cost_today") == today["total_cost_usd"]
    assert value(page, "cost_this_month") == today["burn_rate"]["month_to_date_usd"]
    projected = today["burn_rate"]["projected_month_end_usd"]
    assert value(page, "projected_month_end") == pytest.approx(projected, rel=0.02)
    assert value(page, "calls") == perf["total_calls"] > 0
    assert value(page, "calls_min") == pytest.approx(perf["calls_per_min"])
    assert value(page, "error_rate") == pytest.approx(perf["error_rate"])
    for q in ("p50", "p95", "p99"):
        assert value(page, q) == perf[f"{q}_latency"]
    assert points(page, "latency-overall") > 0 and points(page, "calls") > 0
    assert [row[1].splitlines()[0] for row in rows(page, "alerts-firing")] == ["slow"]
    shoot(page, shots, "overview")
    assert console_errors(page) == []


def test_cost_page_lists_cost_by_dimension_and_the_costliest_calls(
    r: redis.Redis, page: Any, shots: Path
) -> None:
    """The cost page's totals and per-backend rows are the cost tool's; the chart is drawn."""
    open_page(page, "cost")
    cost = tools.get_cost_analysis_data(r, 24)
    assert value(page, "total_cost") == cost["total_cost_usd"]
    assert [row[0] for row in rows(page, "cost-backend")] == list(cost["cost_by_backend"])
    assert [int(row[2].replace(",", "")) for row in rows(page, "cost-model")] == [
        m["calls"] for m in cost["cost_by_model"].values()
    ]
    assert len(rows(page, "cost-top")) == len(cost["most_expensive_operations"]) > 0
    assert points(page, "cost-by-model") > 0 and points(page, "cost-backend") > 0
    shoot(page, shots, "cost")
    assert console_errors(page) == []


def test_latency_page_shows_percentiles_per_backend_and_model(
    r: redis.Redis, page: Any, shots: Path
) -> None:
    """The latency page's overall p95 and table rows are the performance tool's."""
    open_page(page, "latency")
    perf = tools.get_performance_analysis(r, 24)
    assert value(page, "p95") == perf["overall"]["p95"]
    assert value(page, "tokens_s") == pytest.approx(perf["throughput"]["tokens_per_s"])
    assert len(rows(page, "latency-models")) == len(perf["latency"]) > 0
    assert len(rows(page, "latency-network")) == len(perf["network_vs_processing"])
    assert points(page, "p95-backend") > 0 and points(page, "p95-model") > 0
    shoot(page, shots, "latency")
    assert console_errors(page) == []


def test_sessions_page_finds_a_session_and_shows_its_timeline(
    r: redis.Redis, page: Any, shots: Path
) -> None:
    """Searching s-1 shows the session tool's calls and cost and a drawn timeline."""
    open_page(page, "sessions")
    box = page.find_element("id", "session-id")
    box.send_keys("s-1")
    page.execute_script("document.body.dataset.updated = '';")
    page.find_element("css selector", "#session-form button").click()
    wait_for(lambda: page.find_elements("css selector", '[data-metric="session_calls"]'), 30)
    got = tools.get_session_profiling_analysis(r, "s-1")
    assert value(page, "session_calls") == got["summary"]["total_calls"]
    assert value(page, "session_cost") == got["summary"]["total_cost_usd"]
    assert points(page, "session-timeline") > 0
    shoot(page, shots, "sessions")
    assert console_errors(page) == []


def test_silencing_an_alert_from_the_page_creates_the_silence(
    r: redis.Redis, page: Any, shots: Path
) -> None:
    """The Silence button on a firing alert stores a silence matching its rule and labels,
    with the comment typed, and the page lists it."""
    open_page(page, "alerts")
    assert len(rows(page, "alerts-pending")) == 1
    form = page.find_element("css selector", "form.silence")
    form.find_element("name", "comment").send_keys("known slow model")
    form.find_element("css selector", "button").click()
    wait_for(lambda: list_silences(r, time.time()) != [], deadline_s=30)
    (made,) = list_silences(r, time.time())
    assert made["matchers"] == {"rule": "slow", "model": "gpt-4o"}
    assert made["comment"] == "known slow model"
    assert made["ends_at"] - made["starts_at"] == 7200
    wait_for(lambda: len(rows(page, "silences")) == 1, deadline_s=30)
    shoot(page, shots, "alerts")
    assert console_errors(page) == []


def test_insights_and_reports_pages_render(r: redis.Redis, page: Any, shots: Path) -> None:
    """Insights lists the insights tool's recommendations; the report view shows the HTML and
    Markdown reports."""
    open_page(page, "insights")
    recs = tools.get_optimization_insights(r, 24)["recommendations"]
    assert len(rows(page, "insights")) == len(recs)
    shoot(page, shots, "insights")
    open_page(page, "reports")
    page.find_element("css selector", "#report-form button[type=submit]").click()
    wait_for(lambda: page.find_elements("css selector", 'iframe[data-report="html"]'), 30)
    shoot(page, shots, "reports")
    page.find_element("css selector", '#report-format option[value="md"]').click()
    page.find_element("css selector", "#report-form button[type=submit]").click()
    wait_for(lambda: page.find_elements("css selector", 'pre[data-report="md"]'), 30)
    assert page.find_element("css selector", 'pre[data-report="md"]').text.startswith("#")
    assert console_errors(page) == []


def test_live_refresh_shows_new_calls_and_can_pause(
    r: redis.Redis, redis_url: str, page: Any, seeded: Seeded
) -> None:
    """New traffic drained by the workers appears on the open page without a reload; the
    Pause button stops the polling (and Resume starts it again)."""
    open_page(page, "overview")
    before = value(page, "calls")
    seed_traffic(r, redis_url, 32, 500, time.time() - 1800)
    after = tools.get_performance_dashboard(r, 24, False)["performance"]["total_calls"]
    assert after > before
    wait_for(lambda: value(page, "calls") == after, deadline_s=30, poll_s=0.2)
    live = page.find_element("id", "live")
    live.click()
    assert live.get_attribute("aria-pressed") == "false" and live.text == "Resume"
    live.click()
    assert live.get_attribute("aria-pressed") == "true"
    assert console_errors(page) == []


def test_an_empty_database_shows_the_empty_state(
    r: redis.Redis, browser: Any, serve: ServeThread
) -> None:
    """With no data and no worker the overview says so instead of drawing blank charts."""
    browser.get(serve.url + "/#overview")
    wait_for(lambda: browser.find_elements("css selector", '[data-empty="overview"]'), 30)
    text = browser.find_element("css selector", '[data-empty="overview"]').text
    assert text.startswith("no data yet: start a worker")
    assert browser.find_elements("css selector", 'svg[data-chart="latency-overall"]') == []
    assert console_errors(browser) == []
