"""The reports worker: periods, schedules, once-per-period across replicas, and delivery."""

from __future__ import annotations

import csv
import json
import threading
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import redis

from llmtap import keys, notify, webhooks
from llmtap.consumers.reports import (
    ReportConfig,
    ReportWorker,
    Schedule,
    last_period,
    parse_schedule,
    schedules_summary,
)
from llmtap.settings import SettingsError
from llmtap.testing import LocalReceiver, Workload
from tests.alert_helpers import deliver

DAY0 = 1_767_225_600  # 2026-01-01T00:00Z, a Thursday
DAY = 86_400
DAILY = Schedule("daily", "5 0 * * *")


@pytest.mark.parametrize(
    ("name", "now", "expected"),
    [
        ("hourly", DAY0 + 3600 + 300, (DAY0, DAY0 + 3600)),
        ("daily", DAY0 + DAY + 300, (DAY0, DAY0 + DAY)),
        ("daily", DAY0 + DAY, (DAY0, DAY0 + DAY)),
        ("weekly", DAY0 + 4 * DAY + 600, (DAY0 - 3 * DAY, DAY0 + 4 * DAY)),  # Mon 29 Dec-Mon 5 Jan
        ("monthly", DAY0 + 60, (DAY0 - 31 * DAY, DAY0)),  # December
        ("monthly", DAY0 + 31 * DAY + 60, (DAY0, DAY0 + 31 * DAY)),  # January
    ],
)
def test_last_period(name: str, now: float, expected: tuple[int, int]) -> None:
    """A report covers the last complete hour, UTC day, Monday-to-Monday week or month."""
    assert last_period(name, now) == expected


def test_schedule_parses_and_rejects_with_the_variable_name() -> None:
    """Name=crontab pairs parse; an unknown period or a bad crontab names the variable."""
    assert parse_schedule("daily=5 0 * * *; weekly=10 0 * * 1") == [
        DAILY,
        Schedule("weekly", "10 0 * * 1"),
    ]
    with pytest.raises(SettingsError, match="LLMTAP_REPORT_SCHEDULE"):
        parse_schedule("fortnightly=0 0 * * *")
    with pytest.raises(SettingsError, match="LLMTAP_REPORT_SCHEDULE"):
        parse_schedule("daily=61 0 * * *")
    with pytest.raises(SettingsError, match="LLMTAP_REPORT_FORMATS"):
        ReportConfig.from_env({"LLMTAP_REPORT_FORMATS": "md,docx"})


def test_next_runs_follow_the_crontab() -> None:
    """The daily job's next run after 12:00 is 00:05 the next day, UTC."""
    (row,) = schedules_summary([DAILY], DAY0 + 12 * 3600)
    assert row["next_run"] == "2026-01-02T00:05:00Z"


def test_scheduler_registers_one_cron_job_per_schedule(r: redis.Redis) -> None:
    """start() adds a coalescing cron job per schedule with a generous misfire grace time."""
    worker = ReportWorker(r, ReportConfig(schedules=(DAILY, Schedule("weekly", "10 0 * * 1"))))
    worker.start(paused=True)
    try:
        jobs = {job.id: job for job in worker.scheduler.get_jobs()}
        assert set(jobs) == {"daily", "weekly"}
        assert jobs["daily"].coalesce and jobs["daily"].misfire_grace_time == 3600
        assert str(jobs["daily"].trigger).startswith("cron[")
    finally:
        worker.stop()


def test_scheduled_report_fires_once_across_two_replicas(
    r: redis.Redis, redis_url: str, day_of_traffic: Workload, tmp_path: Path
) -> None:
    """Two replicas firing the daily job at the same frozen time produce one report; the next
    day's run produces the next one."""
    config = ReportConfig(schedules=(DAILY,), directory=str(tmp_path))
    clock = [DAY0 + DAY + 300.0]
    other = redis.Redis.from_url(redis_url)
    replicas = [
        ReportWorker(client, config, name=name, clock=lambda: clock[0])
        for client, name in ((r, "a"), (other, "b"))
    ]
    results = [replica.fire(DAILY) for replica in replicas]
    assert [res is not None for res in results] == [True, False]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"llmtap-daily-20260101T0000.{ext}" for ext in ("csv", "html", "json", "md")
    ]
    assert json.loads(r.get(keys.report_lock("daily", "20260101T0000")) or "{}")["consumer"] == "a"
    clock[0] += DAY
    assert replicas[1].fire(DAILY) is not None and replicas[0].fire(DAILY) is None
    assert len(list(tmp_path.glob("llmtap-daily-20260102T0000.*"))) == 4
    other.close()


def test_report_files_parse_and_hold_the_exact_totals(
    r: redis.Redis, day_of_traffic: Workload, tmp_path: Path
) -> None:
    """The JSON holds the exact day cost, the CSV rows parse, the HTML is well-formed."""
    worker = ReportWorker(r, ReportConfig(schedules=(DAILY,), directory=str(tmp_path)),
                          clock=lambda: DAY0 + DAY + 300.0)  # fmt: skip
    assert worker.fire(DAILY) is not None
    stem = tmp_path / "llmtap-daily-20260101T0000"
    model = json.loads(stem.with_suffix(".json").read_text())
    truth = day_of_traffic.truth
    assert model["summary"]["total_cost_usd"] == pytest.approx(truth.cost_nanousd / 1e9, rel=1e-15)
    assert model["summary"]["total_calls"] == truth.calls
    with stem.with_suffix(".csv").open() as handle:
        rows = list(csv.DictReader(handle))
    calls = [row for row in rows if row["section"] == "summary" and row["metric"] == "total_calls"]
    assert [int(row["value"]) for row in calls] == [truth.calls]
    page = ET.fromstring(stem.with_suffix(".html").read_text().removeprefix("<!DOCTYPE html>\n"))
    assert len(page.findall(".//{http://www.w3.org/2000/svg}svg")) == 2
    assert page.findall(".//{http://www.w3.org/2000/svg}rect")


def test_webhook_receives_a_signed_report(
    r: redis.Redis, redis_url: str, day_of_traffic: Workload
) -> None:
    """A webhook URL gets the JSON report, through the notifier, with a valid signature and an
    idempotency key."""
    with LocalReceiver(secret="s3cret") as receiver:
        urls = (receiver.url + "/r",)
        config = ReportConfig(
            schedules=(DAILY,), formats=("json",), webhook_urls=urls, webhook_secret="s3cret"
        )
        produced = ReportWorker(r, config, clock=lambda: DAY0 + DAY + 300.0).fire(DAILY)
        deliver(redis_url, config.receivers())
        (got,) = receiver.wait(1)
    assert produced is not None and produced.webhooks == 1
    body = got.json()
    assert body["schedule"] == "daily"
    assert body["report"]["summary"]["total_calls"] == day_of_traffic.truth.calls
    assert got.headers[webhooks.IDEMPOTENCY_HEADER] == f"report:daily:{DAY0}"


def test_a_report_receiver_down_then_up_gets_the_report_once(
    r: redis.Redis, redis_url: str, day_of_traffic: Workload
) -> None:
    """A report webhook failing three times gets the report on the fourth try, once, and the
    outbox entry is acknowledged: an outage no longer loses a scheduled report."""
    answers = iter([(503, {}), (503, {}), (502, {})])
    with LocalReceiver(respond=lambda got: next(answers, (200, {}))) as receiver:
        config = ReportConfig(schedules=(DAILY,), formats=("json",), webhook_urls=(receiver.url,))
        ReportWorker(r, config, clock=lambda: DAY0 + DAY + 300.0).fire(DAILY)
        notifier = deliver(redis_url, config.receivers())
    assert len(receiver.requests) == 4 and len(receiver.accepted) == 1
    keys_sent = {got.headers[webhooks.IDEMPOTENCY_HEADER] for got in receiver.requests}
    assert keys_sent == {f"report:daily:{DAY0}"}
    assert notifier.counters["report-webhook-1"]["delivered"] == 1
    assert r.xpending(keys.NOTIFY, keys.GROUP_NOTIFIER)["pending"] == 0


def test_a_report_is_one_versioned_outbox_message(r: redis.Redis, day_of_traffic: Workload) -> None:
    """fire() enqueues the report on llmtap:notify as a version-1 report message."""
    config = ReportConfig(schedules=(DAILY,), formats=("json",))
    ReportWorker(r, config, clock=lambda: DAY0 + DAY + 300.0).fire(DAILY)
    ((_, fields),) = r.xrange(keys.NOTIFY)
    message = notify.decode_message(fields)
    assert message.kind == "report" and message.version == notify.OUTBOX_VERSION
    assert message.payload["idempotency_key"] == f"report:daily:{DAY0}"
    assert message.payload["report"]["summary"]["total_calls"] == day_of_traffic.truth.calls


def test_a_failed_run_releases_the_period_lock(r: redis.Redis, tmp_path: Path) -> None:
    """When writing the report fails, the lock is released so a retry can produce it."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = ReportConfig(schedules=(DAILY,), directory=str(blocker / "sub"))
    worker = ReportWorker(r, config, clock=lambda: DAY0 + DAY + 300.0)
    with pytest.raises(OSError):
        worker.fire(DAILY)
    assert r.exists(keys.report_lock("daily", "20260101T0000")) == 0


class _SlackStub(BaseHTTPRequestHandler):
    """Slack's three-step external upload on loopback: upload URL, upload, complete."""

    seen: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.path, body))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        replies = {
            "/api/files.getUploadURLExternal": {"ok": True, "upload_url": f"{base}/upload",
                                                "file_id": "F1"},
            "/api/files.completeUploadExternal": {"ok": True, "files": [{"id": "F1"}]},
        }  # fmt: skip
        payload = json.dumps(replies.get(self.path, {"ok": True})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""


def test_slack_gets_the_markdown_report_with_a_summary(
    r: redis.Redis, redis_url: str, day_of_traffic: Workload
) -> None:
    """The Markdown report is uploaded to the channel, through the notifier, with a one-line
    cost summary."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlackStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _SlackStub.seen = []
    try:
        config = ReportConfig(
            schedules=(DAILY,), formats=("md",), slack_token="xoxb-test",
            slack_channel="C1", slack_base_url=f"http://127.0.0.1:{server.server_address[1]}/api/",
        )  # fmt: skip
        produced = ReportWorker(r, config, clock=lambda: DAY0 + DAY + 300.0).fire(DAILY)
        deliver(redis_url, config.receivers())
    finally:
        server.shutdown()
        server.server_close()
    assert produced is not None and produced.slack
    paths = [path for path, _ in _SlackStub.seen]
    assert paths == ["/api/files.getUploadURLExternal", "/upload",
                     "/api/files.completeUploadExternal"]  # fmt: skip
    assert b"# llmtap daily report" in _SlackStub.seen[1][1]
    complete = _SlackStub.seen[2][1].decode()
    assert "C1" in complete and "calls" in complete


def test_a_worker_with_nowhere_to_deliver_says_so(
    r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A reports worker with no directory and no receiver warns at start that reports go nowhere."""
    worker = ReportWorker(r, ReportConfig.from_env({}))
    with caplog.at_level("WARNING", logger="llmtap.consumers.reports"):
        worker.start(paused=True)
        worker.stop()
    assert any("delivered nowhere" in rec.getMessage() for rec in caplog.records)
