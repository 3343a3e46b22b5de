"""The reports worker: APScheduler cron jobs that produce each scheduled report once per period.

``LLMTAP_REPORT_SCHEDULE`` lists ``name=crontab`` pairs separated by ``;`` (default
``daily=5 0 * * *;weekly=10 0 * * 1``, UTC). The name says which period a report covers:
``hourly``, ``daily``, ``weekly`` (Monday to Monday) or ``monthly`` — always the last complete
one before the job fires, so replicas whose clocks differ by seconds pick the same period.
Before producing a report a replica takes ``keys.report_lock(name, period)`` with SET NX: the
first replica wins, the others skip, and a failed run releases the lock. Reports go to a
directory (``LLMTAP_REPORT_DIR``), to webhooks (``LLMTAP_REPORT_WEBHOOK_URLS``, signed with
``LLMTAP_REPORT_WEBHOOK_SECRET``) and to Slack (``LLMTAP_SLACK_BOT_TOKEN`` and
``LLMTAP_REPORT_SLACK_CHANNEL``: a summary message with the Markdown file).
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import json
import logging
import os
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import redis

from llmtap import keys, webhooks
from llmtap.analyzers import report
from llmtap.consumers.runtime.consumer import consumer_name
from llmtap.read.report import get_report_data
from llmtap.settings import SettingsError

log = logging.getLogger(__name__)

DEFAULT_SCHEDULE: Final = "daily=5 0 * * *;weekly=10 0 * * 1"
PERIODS: Final = ("hourly", "daily", "weekly", "monthly")
_EPOCH_MONDAY: Final = 4 * 86_400  # 1970-01-01 was a Thursday; the first Monday is 5 Jan
MISFIRE_GRACE_S: Final = 3600  # APScheduler's default of 1 s would skip a late run


@dataclass(frozen=True)
class Schedule:
    """One scheduled report: its name (the period it covers) and its crontab (UTC)."""

    name: str
    crontab: str


def parse_schedule(raw: str) -> list[Schedule]:
    """Parse ``name=crontab;...``; raise SettingsError naming LLMTAP_REPORT_SCHEDULE."""
    from apscheduler.triggers.cron import CronTrigger

    out = []
    for part in filter(None, (p.strip() for p in raw.split(";"))):
        name, sep, crontab = part.partition("=")
        name, crontab = name.strip(), crontab.strip()
        if not sep or name not in PERIODS:
            raise SettingsError(
                f"LLMTAP_REPORT_SCHEDULE={raw!r} is invalid; accepted values: "
                f"'name=crontab' pairs separated by ';', name one of {', '.join(PERIODS)}"
            )
        try:
            CronTrigger.from_crontab(crontab, timezone="UTC")
        except ValueError as exc:
            raise SettingsError(f"LLMTAP_REPORT_SCHEDULE: bad crontab {crontab!r}: {exc}") from None
        out.append(Schedule(name, crontab))
    return out


def last_period(name: str, now: float) -> tuple[int, int]:
    """Return ``[start, end)`` of the last complete period of kind ``name`` before ``now``."""
    if name == "monthly":
        return _last_month(now)
    size = {"hourly": 3600, "daily": 86_400, "weekly": 7 * 86_400}[name]
    offset = _EPOCH_MONDAY if name == "weekly" else 0
    end = int((now - offset) // size) * size + offset
    return end - size, end


def _last_month(now: float) -> tuple[int, int]:
    date = dt.datetime.fromtimestamp(now, dt.UTC)
    first = dt.datetime(date.year, date.month, 1, tzinfo=dt.UTC)
    days = calendar.monthrange(first.year - (first.month == 1), (first.month - 2) % 12 + 1)[1]
    end = int(first.timestamp())
    return end - days * 86_400, end


def period_label(start: float) -> str:
    """Return the lock and file label of a period start: ``20260101T0000``."""
    return time.strftime("%Y%m%dT%H%M", time.gmtime(start))


@dataclass(frozen=True)
class ReportConfig:
    """Where scheduled reports go and when they run (``LLMTAP_REPORT_*``)."""

    schedules: tuple[Schedule, ...] = tuple(parse_schedule(DEFAULT_SCHEDULE))
    formats: tuple[str, ...] = report.FORMATS
    directory: str | None = None
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None
    slack_token: str | None = field(default=None, repr=False)
    slack_channel: str | None = None
    slack_base_url: str | None = None  # Slack's Web API unless set (tests use a loopback stub)
    lock_ttl_s: int = 40 * 86_400

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReportConfig:
        """Read the LLMTAP_REPORT_* variables; raise SettingsError naming a bad one."""
        env = os.environ if environ is None else environ
        formats = tuple(
            f.strip() for f in env.get("LLMTAP_REPORT_FORMATS", "md,html,json,csv").split(",")
        )
        if not set(formats) <= set(report.FORMATS):
            raise SettingsError(
                f"LLMTAP_REPORT_FORMATS={','.join(formats)!r} is invalid; "
                f"accepted values: a comma-separated subset of {', '.join(report.FORMATS)}"
            )
        urls = tuple(
            u.strip() for u in env.get("LLMTAP_REPORT_WEBHOOK_URLS", "").split(",") if u.strip()
        )
        return cls(
            schedules=tuple(parse_schedule(env.get("LLMTAP_REPORT_SCHEDULE", DEFAULT_SCHEDULE))),
            formats=formats,
            directory=env.get("LLMTAP_REPORT_DIR") or None,
            webhook_urls=urls,
            webhook_secret=env.get("LLMTAP_REPORT_WEBHOOK_SECRET") or None,
            slack_token=env.get("LLMTAP_SLACK_BOT_TOKEN") or None,
            slack_channel=env.get("LLMTAP_REPORT_SLACK_CHANNEL") or None,
        )


@dataclass(frozen=True)
class Produced:
    """A report this replica produced: schedule, period, rendered files and deliveries."""

    schedule: str
    since: int
    until: int
    rendered: dict[str, str]
    files: list[str]
    webhooks: int
    slack: bool


class ReportWorker:
    """Produces scheduled reports; ``start()`` runs the cron jobs in a background thread.

    ``clock`` gives Unix seconds (tests freeze it); ``fire`` is what each job calls.
    """

    def __init__(
        self,
        client: redis.Redis,
        config: ReportConfig | None = None,
        *,
        name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.config = config or ReportConfig()
        self.name = name or consumer_name()
        self.clock = clock
        self.scheduler: Any = None

    def fire(self, schedule: Schedule) -> Produced | None:
        """Produce the report of ``schedule``'s last complete period unless another replica
        did; return it, or None when the period's lock was taken. Errors release the lock."""
        now = self.clock()
        since, until = last_period(schedule.name, now)
        lock = keys.report_lock(schedule.name, period_label(since))
        claim = json.dumps({"consumer": self.name, "at": now})
        if not self.client.set(lock, claim, nx=True, ex=self.config.lock_ttl_s):
            log.info("report %s %s already produced elsewhere", schedule.name, period_label(since))
            return None
        try:
            produced = self._produce(schedule.name, since, until)
        except Exception:
            self.client.delete(lock)
            raise
        log.info("report %s %s produced", schedule.name, period_label(since))
        return produced

    def start(self, paused: bool = False) -> None:
        """Start the scheduler thread with one cron job per schedule (UTC)."""
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger

        scheduler = BackgroundScheduler(timezone=dt.UTC)
        for schedule in self.config.schedules:
            scheduler.add_job(
                self.fire,
                CronTrigger.from_crontab(schedule.crontab, timezone="UTC"),
                args=[schedule],
                id=schedule.name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=MISFIRE_GRACE_S,
            )
        scheduler.start(paused=paused)
        self.scheduler = scheduler

    def stop(self) -> None:
        """Stop the scheduler, letting a running report finish."""
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None

    def _produce(self, schedule: str, since: int, until: int) -> Produced:
        model = get_report_data(self.client, since, until)
        model["title"] = f"llmtap {schedule} report {period_label(since)}"
        rendered = {fmt: report.render(model, fmt) for fmt in self.config.formats}
        stem = f"llmtap-{schedule}-{period_label(since)}"
        files = write_files(self.config.directory, stem, rendered)
        sent = post_webhooks(self.config, schedule, model, time.time())  # signed at send time
        slack = post_slack(self.config, model, rendered.get("md"), stem)
        return Produced(schedule, since, until, rendered, files, sent, slack)


def write_files(directory: str | None, stem: str, rendered: Mapping[str, str]) -> list[str]:
    """Write each rendering to ``directory/stem.<ext>``; return the paths (none without one)."""
    if not directory:
        return []
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, content in rendered.items():
        path = folder / f"{stem}.{fmt}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(path)  # readers never see a half-written report
        paths.append(str(path))
    return paths


def post_webhooks(config: ReportConfig, schedule: str, model: Mapping[str, Any], now: float) -> int:
    """POST the JSON report to every webhook URL (signed when a secret is set); return how
    many answered 2xx. A failing receiver is logged, not retried."""
    body = json.dumps({"type": "report", "schedule": schedule, "report": model}).encode()
    key = f"report:{schedule}:{model['period']['since']}"
    sent = 0
    for url in config.webhook_urls:
        headers = webhooks.signed_headers(config.webhook_secret, body, key, now)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                sent += 200 <= answer.status < 300
        except OSError as exc:
            log.warning("report webhook %s failed: %s", url.split("?")[0], exc)
    return sent


def post_slack(
    config: ReportConfig, model: Mapping[str, Any], markdown: str | None, stem: str
) -> bool:
    """Upload the Markdown report to Slack with a one-line summary; True when it was sent."""
    if not (config.slack_token and config.slack_channel):
        return False
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    summary = model["summary"]
    text = (
        f"{model['title']}: ${summary['total_cost_usd']:.2f} over {summary['total_calls']} calls, "
        f"error rate {summary['error_rate']:.2%}, month-end projection "
        f"${summary['projected_month_end_usd']:.2f}"
    )
    try:
        client = WebClient(token=config.slack_token)
        if config.slack_base_url:
            client = WebClient(token=config.slack_token, base_url=config.slack_base_url)
        client.files_upload_v2(
            channel=config.slack_channel,
            content=markdown or report.render_markdown(model),
            filename=f"{stem}.md",
            initial_comment=text,
        )
    except SlackApiError as exc:
        log.warning("report upload to Slack failed: %s", exc.response.get("error"))
        return False
    return True


async def run_reports(url: str, stop: asyncio.Event, burst: bool) -> None:
    """Run the scheduler until ``stop`` is set, refreshing a heartbeat (burst: one heartbeat)."""
    from llmtap.consumers.runtime.config import RuntimeConfig

    ttl = RuntimeConfig.from_env().heartbeat_ttl_s
    client = redis.Redis.from_url(url)
    worker = ReportWorker(client, ReportConfig.from_env())
    beat = keys.heartbeat(keys.GROUP_REPORTS, worker.name)
    if not burst:
        worker.start()
    try:
        while True:
            value = json.dumps({"ts": round(time.time(), 3), "pid": os.getpid(), "processed": 0})
            await asyncio.to_thread(client.set, beat, value, ex=ttl)
            if burst:
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=ttl / 3)
                break
            except TimeoutError:
                continue
    finally:
        await asyncio.to_thread(worker.stop)
        client.delete(beat)
        client.close()


def schedules_summary(schedules: Sequence[Schedule], now: float) -> list[dict[str, Any]]:
    """Return each schedule's crontab and next run time (ISO, UTC) after ``now``."""
    from apscheduler.triggers.cron import CronTrigger

    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    return [
        {
            "name": s.name,
            "crontab": s.crontab,
            "next_run": CronTrigger.from_crontab(s.crontab, timezone="UTC")
            .get_next_fire_time(None, moment)
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for s in schedules
    ]
