"""The reports worker: APScheduler cron jobs that produce each scheduled report once per period.

``LLMTAP_REPORT_SCHEDULE`` lists ``name=crontab`` pairs separated by ``;`` (default
``daily=5 0 * * *;weekly=10 0 * * 1``, UTC). The name says which period a report covers:
``hourly``, ``daily``, ``weekly`` (Monday to Monday) or ``monthly`` — always the last complete
one before the job fires, so replicas whose clocks differ by seconds pick the same period.
Before producing a report a replica takes ``keys.report_lock(name, period)`` with SET NX: the
first replica wins, the others skip, and a failed run releases the lock. Reports are written
to a directory (``LLMTAP_REPORT_DIR``) here, and enqueued on the notify outbox for the
notifier to deliver, with its retries, Retry-After, DLQ and idempotency keys, to webhooks
(``LLMTAP_REPORT_WEBHOOK_URLS``, signed with ``LLMTAP_REPORT_WEBHOOK_SECRET``) and to Slack
(``LLMTAP_SLACK_BOT_TOKEN`` and ``LLMTAP_REPORT_SLACK_CHANNEL``: the Markdown file with a
one-line summary); :meth:`ReportConfig.receivers` are those receivers.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import redis

from llmtap import keys, notify
from llmtap.analyzers import report
from llmtap.analyzers.report_output import check_formats, render_bytes
from llmtap.connection import sync_client
from llmtap.consumers.notify.model import TAKES_REPORTS, DeliveryPolicy, Receiver
from llmtap.consumers.runtime.consumer import consumer_name
from llmtap.read.report import get_report_data
from llmtap.settings import SettingsError, environ_or_process

log = logging.getLogger(__name__)

DEFAULT_SCHEDULE: Final = "daily=5 0 * * *;weekly=10 0 * * 1"
PERIODS: Final = ("hourly", "daily", "weekly", "monthly")
_EPOCH_MONDAY: Final = 4 * 86_400  # 1970-01-01 was a Thursday; the first Monday is 5 Jan
MISFIRE_GRACE_S: Final = 3600  # APScheduler's default of 1 s would skip a late run
REPORT_TIMEOUT_S: Final = 10.0  # per delivery attempt to a report receiver


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
    formats: tuple[str, ...] = report.TEXT_FORMATS
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
        env = environ_or_process(environ)
        formats = tuple(
            f.strip() for f in env.get("LLMTAP_REPORT_FORMATS", "md,html,json,csv").split(",")
        )
        if not set(formats) <= set(report.FORMATS):
            raise SettingsError(
                f"LLMTAP_REPORT_FORMATS={','.join(formats)!r} is invalid; "
                f"accepted values: a comma-separated subset of {', '.join(report.FORMATS)}"
            )
        try:
            check_formats(formats)  # pdf and xlsx need the reports extra: say so at start
        except ValueError as exc:
            raise SettingsError(f"LLMTAP_REPORT_FORMATS: {exc}") from None
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

    def receivers(self) -> list[Receiver]:
        """Return the notifier's report receivers: one per webhook URL, and Slack if set."""
        delivery = DeliveryPolicy(timeout_s=REPORT_TIMEOUT_S)
        out = [
            Receiver(f"report-webhook-{i}", "webhook", url=url, secret=self.webhook_secret,
                     delivery=delivery, takes=TAKES_REPORTS)
            for i, url in enumerate(self.webhook_urls, 1)
        ]  # fmt: skip
        if self.slack_token and self.slack_channel:
            slack = Receiver("report-slack", "slack", token=self.slack_token,
                             channel=self.slack_channel, base_url=self.slack_base_url,
                             delivery=delivery, takes=TAKES_REPORTS)  # fmt: skip
            out.append(slack)
        return out


@dataclass(frozen=True)
class Produced:
    """A report this replica produced: schedule, period, rendered files, and the webhook and
    Slack receivers its outbox message is addressed to (the notifier delivers it)."""

    schedule: str
    since: int
    until: int
    rendered: dict[str, bytes]
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
        if self.config.directory is None and not self.config.receivers():
            log.warning(
                "no LLMTAP_REPORT_DIR, report webhooks, Slack channel or email set: "
                "scheduled reports are produced but delivered nowhere"
            )
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
        rendered = {fmt: render_bytes(model, fmt) for fmt in self.config.formats}
        stem = f"llmtap-{schedule}-{period_label(since)}"
        files = write_files(self.config.directory, stem, rendered)
        entry: dict[Any, Any] = report_message(schedule, since, until, stem, model)
        self.client.xadd(keys.NOTIFY, entry, maxlen=keys.NOTIFY_MAXLEN, approximate=True)
        kinds = [receiver.kind for receiver in self.config.receivers()]
        return Produced(
            schedule, since, until, rendered, files, kinds.count("webhook"), "slack" in kinds
        )


def report_message(
    schedule: str, since: int, until: int, stem: str, model: Mapping[str, Any]
) -> dict[str, str]:
    """Return the outbox entry of a scheduled report (idempotency key ``report:<name>:<since>``)."""
    payload = {
        "schedule": schedule,
        "since": since,
        "until": until,
        "stem": stem,
        "idempotency_key": f"report:{schedule}:{since}",
        "report": dict(model),
    }
    return notify.encode_message(notify.OutboxMessage("report", payload))


def write_files(directory: str | None, stem: str, rendered: Mapping[str, bytes]) -> list[str]:
    """Write each rendering to ``directory/stem.<ext>``; return the paths (none without one)."""
    if not directory:
        return []
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, content in rendered.items():
        path = folder / f"{stem}.{fmt}"
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(content)
        tmp.replace(path)  # readers never see a half-written report
        paths.append(str(path))
    return paths


async def run_reports(
    url: str,
    stop: asyncio.Event,
    burst: bool,
    *,
    config: ReportConfig,
    heartbeat_ttl_s: int = keys.HEARTBEAT_TTL_S,
) -> None:
    """Run the scheduler until ``stop`` is set, refreshing a heartbeat (burst: one heartbeat)."""
    ttl = heartbeat_ttl_s
    client = sync_client(url)
    worker = ReportWorker(client, config)
    beat = keys.heartbeat(keys.GROUP_REPORTS, worker.name)
    if not burst:
        worker.start()
    try:
        while True:
            value = notify.encode_heartbeat(
                notify.Heartbeat(ts=round(time.time(), 3), pid=os.getpid())
            )
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
