"""Senders: one delivery attempt to a signed webhook or to Slack, and the bodies they send.

A webhook gets the v1 JSON body (this module builds it; :mod:`llmtap.webhooks` signs it) with
an ``Idempotency-Key`` that is the same on every retry. Slack gets a Block Kit message through
slack-sdk (its own retries off: the notifier retries). A report goes to a webhook as
``{"type": "report", ...}`` and to Slack as the Markdown file with a one-line summary.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from llmtap import webhooks
from llmtap.analyzers.report import render_markdown
from llmtap.consumers.notify.email import EmailSender
from llmtap.consumers.notify.model import Outcome, Receiver, Sender, http_outcome, retry_after

_SLACK_LOG: Final = logging.getLogger("llmtap.slack")
# slack-sdk logs request URLs at debug level, and an incoming-webhook URL is a secret.
_SLACK_LOG.setLevel(logging.INFO)
_EMOJI: Final = {
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
}


class WebhookSender:
    """POSTs the v1 JSON body, signed with the receiver's secret (see :mod:`llmtap.webhooks`)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alerts: Sequence[Mapping[str, Any]], now: float) -> Outcome:
        """POST one alert message once; a timeout or connection error is a retryable outcome."""
        body = webhook_body(alerts, self.receiver.name)
        return await self._post(body, idempotency_key(alerts), now)

    async def send_report(self, report: Mapping[str, Any], now: float) -> Outcome:
        """POST one report (``{"type": "report", "schedule", "report"}``) once."""
        body = json.dumps(
            {"type": "report", "schedule": report["schedule"], "report": report["report"]}
        ).encode()
        return await self._post(body, str(report["idempotency_key"]), now)

    async def _post(self, body: bytes, key: str, now: float) -> Outcome:
        headers = webhooks.signed_headers(self.receiver.secret, body, key, now)
        timeout = aiohttp.ClientTimeout(total=self.receiver.delivery.timeout_s)
        try:
            async with self._client().post(
                self.receiver.url or "", data=body, headers=headers, timeout=timeout
            ) as response:
                return http_outcome(response.status, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome(False, type(exc).__name__)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()


class SlackSender:
    """Posts a Block Kit message with slack-sdk: an incoming webhook, or a bot token + channel.

    slack-sdk's own retry handlers are off: the notifier's policy retries, and a 429's
    Retry-After becomes the wait before the next attempt.
    """

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        timeout = max(1, round(receiver.delivery.timeout_s))
        self._hook: WebhookClient | None = None
        self._web: WebClient | None = None
        if receiver.url:
            self._hook = WebhookClient(
                receiver.url, timeout=timeout, logger=_SLACK_LOG, retry_handlers=[]
            )
        else:
            base = receiver.base_url or WebClient.BASE_URL
            self._web = WebClient(
                receiver.token, base_url=base, timeout=timeout, logger=_SLACK_LOG, retry_handlers=[]
            )

    async def send(self, alerts: Sequence[Mapping[str, Any]], now: float) -> Outcome:
        """Post once (in a thread: slack-sdk's clients are blocking)."""
        text, blocks = slack_message(alerts)
        try:
            return await asyncio.to_thread(self._post, text, blocks)
        except (SlackRequestError, OSError, ValueError) as exc:
            return Outcome(False, type(exc).__name__)

    async def send_report(self, report: Mapping[str, Any], now: float) -> Outcome:
        """Upload the Markdown report with a one-line summary (a bot token), or post the summary
        (an incoming webhook), once."""
        text = report_summary(report["report"])
        try:
            return await asyncio.to_thread(self._post_report, text, report)
        except (SlackRequestError, OSError, ValueError) as exc:
            return Outcome(False, type(exc).__name__)

    def _post(self, text: str, blocks: list[dict[str, Any]]) -> Outcome:
        if self._hook is not None:
            response = self._hook.send(text=text, blocks=blocks)
            return http_outcome(response.status_code, response.headers)
        assert self._web is not None
        channel = self.receiver.channel or ""
        return _web_call(
            lambda: self._web.chat_postMessage(  # type: ignore[union-attr]
                channel=channel, text=text, blocks=blocks
            )
        )

    def _post_report(self, text: str, report: Mapping[str, Any]) -> Outcome:
        if self._hook is not None:
            response = self._hook.send(text=text)
            return http_outcome(response.status_code, response.headers)
        assert self._web is not None
        content = render_markdown(report["report"])
        return _web_call(
            lambda: self._web.files_upload_v2(  # type: ignore[union-attr]
                channel=self.receiver.channel or "",
                content=content,
                filename=f"{report['stem']}.md",
                initial_comment=text,
            )
        )

    async def close(self) -> None:
        """Nothing to close (urllib connections are per request)."""


def _web_call(call: Callable[[], Any]) -> Outcome:
    """Make one Slack Web API call; map its error to an outcome (429: its Retry-After)."""
    try:
        call()
    except SlackApiError as exc:
        status = exc.response.status_code
        if status == 429:
            return Outcome(False, "HTTP 429", retry_after_s=retry_after(exc.response.headers))
        error = str(exc.response.get("error", "")) if status < 300 else f"HTTP {status}"
        return Outcome(False, error or "slack error", retry=status >= 500 or status == 408)
    return Outcome(True)


def report_summary(model: Mapping[str, Any]) -> str:
    """Return a report's one-line Slack summary: cost, calls, error rate, month-end projection."""
    summary = model["summary"]
    return (
        f"{model['title']}: ${summary['total_cost_usd']:.2f} over {summary['total_calls']} calls, "
        f"error rate {summary['error_rate']:.2%}, month-end projection "
        f"${summary['projected_month_end_usd']:.2f}"
    )


def slack_message(alerts: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Return the fallback text and Block Kit blocks: what, how bad, since when, what to run.

    A group gets one block set per alert (the first ten), under the first alert's header.
    """
    text, blocks = _alert_blocks(alerts[0])
    for alert in alerts[1:10]:
        blocks += [{"type": "divider"}, *_alert_blocks(alert)[1][1:]]
    if len(alerts) > 1:
        text = f"{len(alerts)} alerts: {text}"
        blocks[0]["text"]["text"] = f"{blocks[0]['text']['text']} (+{len(alerts) - 1})"[:150]
    return text, blocks


def _alert_blocks(alert: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    status = str(alert["status"]).upper()
    severity = str(alert.get("severity", "warning"))
    icon = ":white_check_mark:" if status == "RESOLVED" else _EMOJI.get(severity, ":warning:")
    title = f"{status}: {alert['rule']}"
    text = f"{title} - {alert['summary']}"
    labels = ", ".join(f"{k}={v}" for k, v in sorted((alert.get("labels") or {}).items()))
    fields = [
        f"*Severity*\n{severity}",
        f"*Value*\n{_fmt(alert.get('values'))} (threshold {_fmt(alert.get('thresholds'))})",
        f"*Since*\n{_when(alert.get('startsAt'))}",
        f"*Labels*\n{labels or 'all calls'}",
    ]
    if alert.get("endsAt") is not None:
        fields.append(f"*Resolved*\n{_when(alert.get('endsAt'))}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {alert['summary']}"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"More: `{show_command(alert['fingerprint'])}`"}
            ],
        },
    ]
    return text, blocks


def _fmt(values: Any) -> str:
    if not isinstance(values, Mapping) or not values:
        return "-"
    return ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values.values())


def _when(ts: Any) -> str:
    if ts is None:
        return "-"
    when = iso(float(ts))
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{when}>"


def build_senders(receivers: list[Receiver]) -> dict[str, Sender]:
    """Return a sender per receiver name."""
    out: dict[str, Sender] = {}
    for receiver in receivers:
        if receiver.kind == "email":
            out[receiver.name] = EmailSender(receiver)
            continue
        out[receiver.name] = (
            SlackSender(receiver) if receiver.kind == "slack" else WebhookSender(receiver)
        )
    return out


# --- the v1 webhook body ------------------------------------------------------------


def iso(ts: float | None) -> str | None:
    """Return a Unix time as ISO 8601 UTC with milliseconds (``2026-01-01T00:00:00.000Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(alerts: Sequence[Mapping[str, Any]], receiver: str) -> bytes:
    """Return the v1 JSON body for one message: one alert, or a group of them, in order."""
    payload = {
        "version": webhooks.SCHEMA_VERSION,
        "idempotency_key": idempotency_key(alerts),
        "receiver": receiver,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": [alert_body(alert) for alert in alerts],
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def alert_body(alert: Mapping[str, Any]) -> dict[str, Any]:
    """Return one alert of a v1 body (times as ISO 8601 UTC, ``endsAt`` null while firing)."""
    return {
        "idempotency_key": alert["idempotency_key"],
        "fingerprint": alert["fingerprint"],
        "status": alert["status"],
        "rule": alert["rule"],
        "kind": alert["kind"],
        "severity": alert["severity"],
        "summary": alert["summary"],
        "labels": alert["labels"] or {},
        "values": alert["values"] or {},
        "thresholds": alert["thresholds"] or {},
        "startsAt": iso(alert.get("startsAt")),
        "endsAt": iso(alert.get("endsAt")),
        "sequence": alert["sequence"],
        "command": show_command(alert["fingerprint"]),
    }


def idempotency_key(alerts: Sequence[Mapping[str, Any]]) -> str:
    """Return a message's key: the alert's own (``<fingerprint>:<sequence>``) or, for a group,
    ``group:`` and a hash of its alerts' keys (the same on every retry of the message)."""
    if len(alerts) == 1:
        return str(alerts[0]["idempotency_key"])
    joined = ",".join(str(a["idempotency_key"]) for a in alerts)
    return "group:" + hashlib.sha256(joined.encode()).hexdigest()[:32]


def show_command(fingerprint: str) -> str:
    """Return the CLI command that shows an alert's state and history."""
    return f"llmtap alerts show {fingerprint}"
