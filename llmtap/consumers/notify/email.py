"""The email sender: one SMTP delivery attempt (STARTTLS, implicit TLS or plain; optional
login) of an alert mail (plain text and HTML) or a report mail (the HTML report inline, the
chosen formats attached).

Every message carries the notification's idempotency key in ``X-Llmtap-Idempotency-Key`` and a
``Message-ID`` derived from it, so a retry (or another notifier replica) sends the same message.
SMTP's answers map to outcomes: 5xx and refused recipients are final (dead-lettered at once),
4xx, timeouts and refused connections are retried. The password is never logged: smtplib's
debug output stays off, and reasons carry the server's reply only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import html
import logging
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from typing import Any, Final

from llmtap.analyzers.report import render_html
from llmtap.analyzers.report_output import MEDIA_TYPES, render_bytes
from llmtap.consumers.notify.email_settings import EmailSettings
from llmtap.consumers.notify.model import Outcome, Receiver

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER: Final = "X-Llmtap-Idempotency-Key"


# --- the messages ------------------------------------------------------------------------


def _iso(ts: Any) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _values(values: Any) -> str:
    if not isinstance(values, Mapping) or not values:
        return "-"
    return ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values.values())


def message_id(key: str, sender: str) -> str:
    """Return the Message-ID of a notification: the same for every send of ``key``."""
    domain = sender.rpartition("@")[2].strip("> ") or "llmtap.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}.llmtap@{domain}>"


def alert_key(alerts: Sequence[Mapping[str, Any]]) -> str:
    """Return an alert message's idempotency key: the alert's own, or ``group:`` and a hash of
    its alerts' keys (as the webhook body has it)."""
    if len(alerts) == 1:
        return str(alerts[0]["idempotency_key"])
    joined = ",".join(str(a["idempotency_key"]) for a in alerts)
    return "group:" + hashlib.sha256(joined.encode()).hexdigest()[:32]


def _subject(template: str, values: Mapping[str, Any]) -> str:
    return " ".join(template.format_map(values).split())[:200]  # one line: no header injection


def _envelope(settings: EmailSettings, subject: str, key: str, now: float) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    if settings.cc:
        message["Cc"] = ", ".join(settings.cc)
    message["Subject"] = subject
    message["Date"] = formatdate(now, usegmt=True)
    message["Message-ID"] = message_id(key, settings.sender)
    message[IDEMPOTENCY_HEADER] = key
    return message


def _alert_lines(alert: Mapping[str, Any]) -> list[tuple[str, str]]:
    labels = ", ".join(f"{k}={v}" for k, v in sorted((alert.get("labels") or {}).items()))
    rows = [
        ("Severity", str(alert.get("severity", "warning"))),
        ("Value", f"{_values(alert.get('values'))} (threshold {_values(alert.get('thresholds'))})"),
        ("Since", _iso(alert.get("startsAt"))),
        ("Labels", labels or "all calls"),
    ]
    if alert.get("endsAt") is not None:
        rows.append(("Resolved", _iso(alert.get("endsAt"))))
    return [*rows, ("More", f"llmtap alerts show {alert['fingerprint']}")]


def _title(alert: Mapping[str, Any]) -> str:
    return f"{str(alert['status']).upper()}: {alert['rule']}"


def alert_text(alerts: Sequence[Mapping[str, Any]]) -> str:
    """Return the plain-text part: per alert, what, how bad, since when, what to run."""
    blocks = []
    for alert in alerts:
        lines = [_title(alert), str(alert["summary"]), ""]
        lines += [f"{name}: {value}" for name, value in _alert_lines(alert)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def alert_html(alerts: Sequence[Mapping[str, Any]]) -> str:
    """Return the HTML part: per alert a heading, the summary and a table of its details."""
    esc = html.escape
    parts = ['<!DOCTYPE html><html><head><meta charset="utf-8"/></head><body>']
    for alert in alerts:
        rows = "".join(
            f"<tr><th align='left'>{esc(n)}</th><td>{esc(v)}</td></tr>"
            for n, v in _alert_lines(alert)
        )
        parts.append(f"<h2>{esc(_title(alert))}</h2><p>{esc(str(alert['summary']))}</p>")
        parts.append(f"<table>{rows}</table>")
    parts.append("</body></html>")
    return "".join(parts)


def alert_message(
    settings: EmailSettings, alerts: Sequence[Mapping[str, Any]], now: float
) -> EmailMessage:
    """Return the mail of one alert message (one alert, or a group): text and HTML parts."""
    first = alerts[0]
    values = {
        "status": str(first["status"]).upper(),
        "rule": first["rule"],
        "severity": first.get("severity", ""),
        "summary": first.get("summary", ""),
        "count": len(alerts),
        "fingerprint": first["fingerprint"],
    }
    subject = _subject(settings.subject, values)
    if len(alerts) > 1:
        subject = f"{subject} (+{len(alerts) - 1})"
    message = _envelope(settings, subject, alert_key(alerts), now)
    message.set_content(alert_text(alerts))
    message.add_alternative(alert_html(alerts), subtype="html")
    return message


def report_text(report: Mapping[str, Any]) -> str:
    """Return a report mail's plain-text part: the title, period and headline numbers."""
    model, summary = report["report"], report["report"]["summary"]
    period = model["period"]
    return (
        f"{model['title']}\n\nPeriod: {period['since_iso']} to {period['until_iso']}\n"
        f"Cost: ${summary['total_cost_usd']:.2f} over {summary['total_calls']} calls\n"
        f"Error rate: {summary['error_rate']:.2%}\n"
        f"Projected month end: ${summary['projected_month_end_usd']:.2f}\n"
    )


def report_message(settings: EmailSettings, report: Mapping[str, Any], now: float) -> EmailMessage:
    """Return the mail of one scheduled report: text and the HTML report inline, and the
    receiver's formats attached as ``<stem>.<ext>``. Raises MissingExtra without the extra."""
    model = report["report"]
    values = {
        "title": model["title"],
        "schedule": report.get("schedule", ""),
        "since": model["period"]["since_iso"],
        "until": model["period"]["until_iso"],
        "total_cost_usd": model["summary"]["total_cost_usd"],
    }
    subject = _subject(settings.report_subject, values)
    message = _envelope(settings, subject, str(report["idempotency_key"]), now)
    message.set_content(report_text(report))
    message.add_alternative(render_html(model), subtype="html")
    for fmt in settings.attach:
        maintype, _, subtype = MEDIA_TYPES[fmt].partition("/")
        message.add_attachment(
            render_bytes(model, fmt),
            maintype=maintype,
            subtype=subtype,
            filename=f"{report['stem']}.{fmt}",
        )
    return message


# --- SMTP -------------------------------------------------------------------------------


def reply_outcome(code: int, reply: bytes | str) -> Outcome:
    """Return the outcome of an SMTP error reply: 5xx final, anything else retried."""
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    reason = f"SMTP {code} {' '.join(text.split())}"[:300]
    return Outcome(False, reason, retry=not 500 <= code < 600)


def refused_outcome(refused: Mapping[str, tuple[int, bytes]]) -> Outcome:
    """Return the outcome when every recipient was refused: final unless one answer was 4xx."""
    detail = "; ".join(
        f"{addr} ({code} {reply.decode(errors='replace')})"
        for addr, (code, reply) in refused.items()
    )
    temporary = any(not 500 <= code < 600 for code, _ in refused.values())
    return Outcome(False, f"recipients refused: {detail}"[:300], retry=temporary)


class EmailSender:
    """Sends one mail per notification over SMTP (smtplib, in a thread), a new connection each."""

    def __init__(self, receiver: Receiver) -> None:
        if receiver.email is None:
            raise ValueError(f"receiver {receiver.name}: an email receiver needs email settings")
        self.receiver = receiver
        self.settings: EmailSettings = receiver.email

    async def send(self, alerts: Sequence[Mapping[str, Any]], now: float) -> Outcome:
        """Mail one alert message once; never raises for transport errors."""
        try:
            message = alert_message(self.settings, alerts, now)
        except (KeyError, ValueError, TypeError) as exc:
            return Outcome(False, f"cannot build the mail: {exc!r}", retry=False)
        return await asyncio.to_thread(self._deliver, message)

    async def send_report(self, report: Mapping[str, Any], now: float) -> Outcome:
        """Render and mail one report once (rendering in a thread: PDFs take a second or two)."""
        try:
            message = await asyncio.to_thread(report_message, self.settings, report, now)
        except (KeyError, ValueError, TypeError) as exc:
            return Outcome(False, f"cannot build the report mail: {exc}", retry=False)
        return await asyncio.to_thread(self._deliver, message)

    def _connect(self) -> smtplib.SMTP:
        settings, timeout = self.settings, self.receiver.delivery.timeout_s
        context = ssl.create_default_context(cafile=settings.ca_file)
        smtp: smtplib.SMTP
        if settings.tls == "implicit":
            smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
        try:
            if settings.tls == "starttls":
                smtp.starttls(context=context)
            if settings.username:
                smtp.login(settings.username, settings.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _deliver(self, message: EmailMessage) -> Outcome:
        try:
            with self._connect() as smtp:
                refused = smtp.send_message(message, self.settings.sender, self.settings.recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            return refused_outcome(exc.recipients)
        except smtplib.SMTPResponseException as exc:
            return reply_outcome(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPNotSupportedError as exc:
            return Outcome(False, f"SMTP server does not support it: {exc}", retry=False)
        except ssl.SSLCertVerificationError as exc:
            return Outcome(False, f"TLS certificate not trusted: {exc.verify_message}", retry=False)
        except (smtplib.SMTPException, OSError) as exc:
            return Outcome(False, type(exc).__name__)
        if refused:  # some recipients took it: a retry would send the others a second copy
            log.warning("receiver %s: recipients refused %s", self.receiver.name, sorted(refused))
        return Outcome(True)

    async def close(self) -> None:
        """Nothing to close (a connection per message)."""
