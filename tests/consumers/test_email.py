"""Email receivers against a real SMTP server on loopback (aiosmtpd): headers, parts and
attachments, STARTTLS and implicit TLS with a test CA, login, retries, the DLQ, and the
weekly report arriving with its PDF and workbook attached."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import redis
from pypdf import PdfReader

from llmtap import keys
from llmtap.analyzers.rules import Rule, RuleError
from llmtap.consumers.notify.config import parse_receivers, receivers_from_env
from llmtap.consumers.notify.email import IDEMPOTENCY_HEADER, message_id
from llmtap.consumers.notify.email_settings import EmailSettings
from llmtap.consumers.notify.model import TAKES_REPORTS, DeliveryPolicy, Receiver
from llmtap.consumers.reports import ReportConfig, ReportWorker, Schedule
from llmtap.retry import RetryPolicy
from llmtap.settings import SettingsError
from llmtap.testing import Workload
from tests.alert_helpers import T0, active, deliver
from tests.report_helpers import DAY, DAY0
from tests.smtp_helpers import Inbox, free_port, make_ca, smtp_server

SLOW = Rule("slow", "latency_above", 2.0, group_by=("model",))
WEEKLY = Schedule("weekly", "10 0 * * 1")


@pytest.fixture
def inbox() -> Inbox:
    """What the loopback SMTP server accepted."""
    return Inbox()


@pytest.fixture
def port() -> int:
    """A free loopback port for the SMTP server."""
    return free_port()


@pytest.fixture
def server(inbox: Inbox, port: int) -> Iterator[Any]:
    """A plain SMTP server on loopback."""
    controller = smtp_server(inbox, port)
    controller.start()
    yield controller
    controller.stop()


def mail(port: int, name: str = "mail", **changes: Any) -> Receiver:
    """An email receiver for the loopback server (plain SMTP) with a fast retry policy."""
    settings = EmailSettings(
        host="127.0.0.1",
        port=port,
        tls="none",
        sender="llmtap@example.test",
        to=("ops@example.test",),
        cc=("cto@example.test",),
        attach=(),
    )
    takes = changes.pop("takes", ("alert",))
    return Receiver(name, "email", email=dataclasses.replace(settings, **changes), takes=takes,
                    retry=RetryPolicy(attempts=5, base_s=0.01, cap_s=0.05),
                    delivery=DeliveryPolicy(timeout_s=5.0))  # fmt: skip


def test_an_alert_arrives_with_headers_and_two_parts(
    r: redis.Redis, redis_url: str, server: Any, inbox: Inbox, port: int
) -> None:
    """A firing alert becomes one mail to to and cc, with the subject template, a Message-ID
    and idempotency header from the alert's key, and a plain-text and an HTML part."""
    active(redis_url, SLOW, {"model": "gpt-4o"}, T0)
    notifier = deliver(redis_url, [mail(port)])
    (got,) = inbox.wait(1)
    message = got.message
    assert got.mail_from == "llmtap@example.test"
    assert got.rcpt_tos == ["ops@example.test", "cto@example.test"]
    assert message["To"] == "ops@example.test" and message["Cc"] == "cto@example.test"
    assert message["Subject"] == "[llmtap] FIRING: slow (warning)"
    key = message[IDEMPOTENCY_HEADER]
    assert key.startswith(message["X-Llmtap-Idempotency-Key"]) and ":" in key
    assert message["Message-ID"] == message_id(key, "llmtap@example.test")
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    assert "FIRING: slow" in text and "model=gpt-4o" in text and "llmtap alerts show" in text
    assert "<h2>FIRING: slow</h2>" in page
    assert notifier.counters["mail"]["delivered"] == 1


def test_server_down_then_up_delivers_each_once(
    r: redis.Redis, redis_url: str, inbox: Inbox, port: int
) -> None:
    """With the server down (connection refused) two alerts are retried with the backoff;
    once it is up each arrives exactly once and the outbox is acknowledged."""
    for i in range(2):
        active(redis_url, SLOW, {"model": f"m{i}"}, T0 + i)
    controller = smtp_server(inbox, port)
    sleeps: list[float] = []

    async def retry_wait(delay: float) -> None:
        sleeps.append(delay)
        if len(sleeps) == 3:  # a few refused attempts, then the server comes up
            controller.start()

    try:
        notifier = deliver(redis_url, [mail(port)], sleep=retry_wait)
    finally:
        controller.stop()
    assert len(inbox.got) == 2
    assert len({got.message["Message-ID"] for got in inbox.got}) == 2
    counters = notifier.counters["mail"]
    assert counters["delivered"] == 2 and counters["retried"] >= 3
    assert "dead_lettered" not in counters
    assert r.xpending(keys.NOTIFY, keys.GROUP_NOTIFIER)["pending"] == 0


def test_a_550_is_dead_lettered_at_once_with_its_reason(
    r: redis.Redis, redis_url: str, inbox: Inbox, port: int
) -> None:
    """A 550 to DATA is final: one attempt, then the notify DLQ holds the server's reply."""
    inbox.data_reply = lambda: "550 5.7.1 Message rejected as spam"
    controller = smtp_server(inbox, port)
    controller.start()
    active(redis_url, SLOW, {"model": "gpt-4o"}, T0)
    try:
        notifier = deliver(redis_url, [mail(port)])
    finally:
        controller.stop()
    assert notifier.counters["mail"]["attempts"] == 1
    ((_, fields),) = r.xrange(keys.NOTIFY_DLQ)
    assert fields[b"receiver"] == b"mail"
    assert fields[b"reason"].decode() == "SMTP 550 5.7.1 Message rejected as spam"


def test_refused_recipients_are_final_and_a_4xx_is_retried(
    r: redis.Redis, redis_url: str, inbox: Inbox, port: int
) -> None:
    """Every recipient refused with 550 dead-letters at once naming them; a 451 to DATA is
    retried until the server takes the mail."""
    inbox.bad_rcpt = {
        "ops@example.test": "550 5.1.1 No such user",
        "cto@example.test": "550 5.1.1 No",
    }
    replies = iter(["451 4.3.0 Try again later"])
    controller = smtp_server(inbox, port)
    controller.start()
    active(redis_url, SLOW, {"model": "gpt-4o"}, T0)
    try:
        notifier = deliver(redis_url, [mail(port)])
        ((_, fields),) = r.xrange(keys.NOTIFY_DLQ)
        assert fields[b"reason"].decode().startswith("recipients refused: ops@example.test (550")
        assert notifier.counters["mail"]["attempts"] == 1
        inbox.bad_rcpt = {}
        inbox.data_reply = lambda: next(replies, None)
        active(redis_url, SLOW, {"model": "gpt-4o-mini"}, T0 + 1)
        notifier = deliver(redis_url, [mail(port)])
    finally:
        controller.stop()
    assert notifier.counters["mail"]["attempts"] == 2 and len(inbox.got) == 1


@pytest.mark.parametrize("implicit", [False, True])
def test_tls_with_a_test_certificate_and_login(
    r: redis.Redis, redis_url: str, inbox: Inbox, port: int, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, implicit: bool,
) -> None:  # fmt: skip
    """STARTTLS with a login, and implicit TLS, against a certificate from a test CA: the
    mail arrives, the server saw the password, and no log line shows it. (aiosmtpd offers
    AUTH only after STARTTLS, so the implicit-TLS case sends without a login.)"""
    ca = make_ca(tmp_path)
    controller = smtp_server(inbox, port, ca, implicit=implicit, login=not implicit)
    controller.start()
    active(redis_url, SLOW, {"model": "gpt-4o"}, T0)
    login = {} if implicit else {"username": "llmtap", "password": "pw-s3cret"}
    tls = "implicit" if implicit else "starttls"
    receiver = mail(port, tls=tls, ca_file=ca.ca_file, **login)
    caplog.set_level(logging.DEBUG)
    try:
        deliver(redis_url, [receiver])
    finally:
        controller.stop()
    assert len(inbox.wait(1)) == 1
    assert inbox.logins == ([] if implicit else [(b"llmtap", b"pw-s3cret")])
    assert "pw-s3cret" not in caplog.text and "pw-s3cret" not in repr(receiver)


def test_an_untrusted_certificate_is_final(
    r: redis.Redis, redis_url: str, inbox: Inbox, port: int, tmp_path: Path
) -> None:
    """A server certificate the client's CA does not vouch for is dead-lettered at once."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    served, trusted = make_ca(tmp_path / "a"), make_ca(tmp_path / "b")
    controller = smtp_server(inbox, port, served)
    controller.start()
    active(redis_url, SLOW, {"model": "gpt-4o"}, T0)
    try:
        notifier = deliver(redis_url, [mail(port, tls="starttls", ca_file=trusted.ca_file)])
    finally:
        controller.stop()
    assert notifier.counters["mail"]["attempts"] == 1 and not inbox.got
    ((_, fields),) = r.xrange(keys.NOTIFY_DLQ)
    assert b"certificate" in fields[b"reason"]


def test_a_scheduled_weekly_report_arrives_with_pdf_and_excel(
    r: redis.Redis, redis_url: str, day_of_traffic: Workload, server: Any, inbox: Inbox,
    port: int,
) -> None:  # fmt: skip
    """The reports worker fires the weekly job; the notifier mails the report once: the HTML
    report inline, the PDF and the workbook attached, their numbers the report's."""
    config = ReportConfig(schedules=(WEEKLY,), formats=("json",))
    produced = ReportWorker(r, config, clock=lambda: DAY0 + 4 * DAY + 600.0).fire(WEEKLY)
    assert produced is not None
    receiver = mail(port, "report-mail", takes=TAKES_REPORTS, attach=("pdf", "xlsx"))
    deliver(redis_url, [receiver])
    (got,) = inbox.wait(1)
    message = got.message
    stem = "llmtap-weekly-20251229T0000"
    assert message["Subject"] == "[llmtap] llmtap weekly report 20251229T0000"
    assert message[IDEMPOTENCY_HEADER] == f"report:weekly:{DAY0 - 3 * DAY}"
    assert "<svg" in message.get_body(("html",)).get_content()
    files = {part.get_filename(): part for part in message.iter_attachments()}
    assert set(files) == {f"{stem}.pdf", f"{stem}.xlsx"}
    assert files[f"{stem}.pdf"].get_content_type() == "application/pdf"
    truth = day_of_traffic.truth
    pdf = PdfReader(BytesIO(files[f"{stem}.pdf"].get_content()))
    assert f"total_calls {truth.calls}" in " ".join((pdf.pages[0].extract_text() or "").split())
    book = openpyxl.load_workbook(BytesIO(files[f"{stem}.xlsx"].get_content()))
    summary = {row[0].value: row[1].value for row in book["Summary"].iter_rows(min_row=2)}
    assert summary["calls"] == truth.calls
    assert summary["total cost"] == pytest.approx(truth.cost_nanousd / 1e9, rel=1e-12)
    assert len(inbox.got) == 1  # one message: the outbox entry was acknowledged


RULES = """\
receivers:
  - name: finance
    kind: email
    host: smtp.example.test
    tls: implicit
    username: llmtap
    password_env: SMTP_PASSWORD
    from: llmtap@example.test
    to: [finance@example.test]
    cc: cto@example.test
    subject: "{severity}: {summary}"
    takes: [alert, report]
    attach: [pdf, csv]
"""


def test_an_email_receiver_parses_from_the_rules_file() -> None:
    """Every email field lands in its settings; the port follows the TLS mode; the password
    comes from the variable the file names and never shows in a repr."""
    (finance,) = parse_receivers(RULES, {"SMTP_PASSWORD": "pw-1"})
    email = finance.email
    assert email is not None and finance.kind == "email" and finance.takes == ("alert", "report")
    assert (email.host, email.port, email.tls) == ("smtp.example.test", 465, "implicit")
    assert email.username == "llmtap"
    assert email.to == ("finance@example.test",) and email.cc == ("cto@example.test",)
    assert email.password == "pw-1" and email.attach == ("pdf", "csv")
    assert "pw-1" not in repr(finance)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("    password: inline\n", "password_env: VARIABLE, not inline"),
        ("    tls: ssl\n", "'ssl' is not one of starttls, implicit, none"),
        ('    subject: "{nope}"\n', "bad template"),
        ("    attach: [docx]\n", "unknown report format 'docx'"),
        ("    to: [nobody]\n", "'nobody' is not an email address"),
    ],
)
def test_bad_email_receivers_name_the_field(change: str, reason: str) -> None:
    """A bad email receiver fails with RuleError naming the line and the field."""
    text = RULES.replace("    attach: [pdf, csv]\n", "") + change
    with pytest.raises(RuleError, match=reason) as info:
        parse_receivers(text, {"SMTP_PASSWORD": "pw-1"}, "r.yaml")
    assert "r.yaml:2:" in str(info.value)


def test_environment_email_receivers() -> None:
    """LLMTAP_SMTP_* with LLMTAP_ALERT_EMAIL_TO and LLMTAP_REPORT_EMAIL_TO make an alert and
    a report receiver; a bad value names its variable."""
    env = {
        "LLMTAP_SMTP_HOST": "smtp.example.test",
        "LLMTAP_EMAIL_FROM": "l@example.test",
        "LLMTAP_SMTP_USERNAME": "u",
        "LLMTAP_SMTP_PASSWORD": "pw-2",
        "LLMTAP_ALERT_EMAIL_TO": "a@example.test,b@example.test",
        "LLMTAP_REPORT_EMAIL_TO": "r@example.test",
        "LLMTAP_REPORT_EMAIL_ATTACH": "xlsx",
    }
    alerts, reports = receivers_from_env(env)
    assert alerts.takes == ("alert",) and reports.takes == ("report",)
    assert alerts.email is not None and alerts.email.to == ("a@example.test", "b@example.test")
    assert reports.email is not None and reports.email.attach == ("xlsx",)
    assert alerts.email.port == 587 and alerts.email.password == "pw-2"
    with pytest.raises(SettingsError, match="LLMTAP_SMTP_TLS"):
        receivers_from_env({**env, "LLMTAP_SMTP_TLS": "tls1.3"})
    with pytest.raises(SettingsError, match="LLMTAP_SMTP_PASSWORD"):
        receivers_from_env({k: v for k, v in env.items() if k != "LLMTAP_SMTP_PASSWORD"})
