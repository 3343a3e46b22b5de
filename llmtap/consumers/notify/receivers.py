"""Notification receivers: their configuration and the senders for webhooks and Slack.

Receivers come from the ``receivers:`` section of the rules file (``LLMTAP_ALERT_RULES``) and
from the environment (``LLMTAP_ALERT_WEBHOOK_URL`` + ``LLMTAP_ALERT_WEBHOOK_SECRET``,
``LLMTAP_SLACK_WEBHOOK_URL``, ``LLMTAP_SLACK_BOT_TOKEN`` + ``LLMTAP_SLACK_CHANNEL``). A secret
in the file is given as ``secret_env: NAME`` (read from the environment), never inline.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from llmtap import webhooks
from llmtap.analyzers.rules import SEVERITIES, RuleError, parse_document, parse_duration
from llmtap.consumers.notify.notifier import (
    Outcome,
    Receiver,
    RetryPolicy,
    Route,
    Sender,
    http_outcome,
    retry_after,
)
from llmtap.settings import SettingsError

log = logging.getLogger(__name__)
KINDS: Final = ("webhook", "slack")
_SLACK_LOG: Final = logging.getLogger("llmtap.slack")
# slack-sdk logs request URLs at debug level, and an incoming-webhook URL is a secret.
_SLACK_LOG.setLevel(logging.INFO)
_EMOJI: Final = {
    "critical": ":rotating_light:",
    "warning": ":warning:",
    "info": ":information_source:",
}


# --- configuration ---------------------------------------------------------------------


def receivers_from_env(environ: Mapping[str, str] | None = None) -> list[Receiver]:
    """Return the env receivers plus those of the rules file; SettingsError on a bad one."""
    env = os.environ if environ is None else environ
    out = _env_receivers(env)
    path = env.get("LLMTAP_ALERT_RULES")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                out += parse_receivers(handle.read(), env, path)
        except (RuleError, OSError) as exc:
            raise SettingsError(f"LLMTAP_ALERT_RULES: {exc}") from None
    return out


def _env_receivers(env: Mapping[str, str]) -> list[Receiver]:
    out = []
    if env.get("LLMTAP_ALERT_WEBHOOK_URL"):
        url, secret = env["LLMTAP_ALERT_WEBHOOK_URL"], env.get("LLMTAP_ALERT_WEBHOOK_SECRET")
        out.append(Receiver("webhook", "webhook", url=url, secret=secret))
    if env.get("LLMTAP_SLACK_WEBHOOK_URL"):
        out.append(Receiver("slack", "slack", url=env["LLMTAP_SLACK_WEBHOOK_URL"]))
    elif env.get("LLMTAP_SLACK_BOT_TOKEN"):
        channel = env.get("LLMTAP_SLACK_CHANNEL")
        if not channel:
            raise SettingsError("LLMTAP_SLACK_CHANNEL: required with LLMTAP_SLACK_BOT_TOKEN")
        out.append(Receiver("slack", "slack", token=env["LLMTAP_SLACK_BOT_TOKEN"], channel=channel))
    return out


def parse_receivers(text: str, env: Mapping[str, str], source: str = "<rules>") -> list[Receiver]:
    """Return the ``receivers:`` of a rules file; raise RuleError naming the line and reason."""
    doc = parse_document(text, source)
    items = doc.get("receivers") or []
    if not isinstance(items, list):
        raise RuleError(f"{source}: 'receivers' must be a list")
    out = []
    for item in items:
        line = getattr(item, "line", 0)
        try:
            out.append(_receiver(item, env))
        except (ValueError, TypeError, KeyError) as exc:
            raise RuleError(f"{source}:{line}: receiver: {exc}") from None
    return out


def _receiver(item: Any, env: Mapping[str, str]) -> Receiver:
    if not isinstance(item, dict) or not item.get("name"):
        raise ValueError("each receiver is a mapping with a name")
    kind = item.get("kind", "webhook")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    secrets = {k: _secret(item, k, env) for k in ("url", "secret", "token")}
    if not (secrets["url"] or secrets["token"]):
        raise ValueError(f"{item['name']}: needs url (or url_env), or token_env and channel")
    return Receiver(
        str(item["name"]),
        kind,
        url=secrets["url"],
        secret=secrets["secret"],
        token=secrets["token"],
        channel=item.get("channel"),
        base_url=item.get("base_url"),
        routes=tuple(_route(r) for r in item.get("routes") or []),
        retry=_policy(item.get("retry") or {}),
        **_grouping(item),
    )


def _grouping(item: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "group_by" in item:
        out["group_by"] = tuple(str(label) for label in item["group_by"])
    for key in ("group_wait", "group_interval"):
        if key in item:
            out[f"{key}_s"] = parse_duration(key, item[key])
    return out


def _secret(item: Mapping[str, Any], name: str, env: Mapping[str, str]) -> str | None:
    if name in ("secret", "token") and name in item:
        raise ValueError(f"give {name} as {name}_env: VARIABLE, not inline")
    var = item.get(f"{name}_env")
    if var is None:
        return str(item[name]) if item.get(name) else None
    if not env.get(var):
        raise ValueError(f"{name}_env: environment variable {var} is not set")
    return env[var]


def _route(raw: Any) -> Route:
    if not isinstance(raw, dict):
        raise ValueError("a route is a mapping with severity and/or match")
    severity = raw.get("severity") or []
    severities = tuple([severity] if isinstance(severity, str) else severity)
    for value in severities:
        if value not in SEVERITIES:
            raise ValueError(f"severity {value!r} is not one of {', '.join(SEVERITIES)}")
    matchers = {str(k): str(v) for k, v in (raw.get("match") or {}).items()}
    return Route(severities, matchers)


def _policy(raw: Mapping[str, Any]) -> RetryPolicy:
    values: dict[str, Any] = {}
    if "attempts" in raw:
        values["attempts"] = int(raw["attempts"])
    for key in ("base", "cap", "timeout"):
        if key in raw:
            values[f"{key}_s"] = parse_duration(key, raw[key])
    if "jitter" in raw:
        values["jitter"] = float(raw["jitter"])
    return RetryPolicy(**values)


# --- senders ---------------------------------------------------------------------------


class WebhookSender:
    """POSTs the v1 JSON body, signed with the receiver's secret (see :mod:`llmtap.webhooks`)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alerts: Sequence[Mapping[str, Any]], now: float) -> Outcome:
        """POST once; a timeout or connection error is a retryable outcome."""
        body = webhooks.body(alerts, self.receiver.name)
        key = webhooks.idempotency_key(alerts)
        headers = webhooks.signed_headers(self.receiver.secret, body, key, now)
        timeout = aiohttp.ClientTimeout(total=self.receiver.retry.timeout_s)
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
        timeout = max(1, round(receiver.retry.timeout_s))
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

    def _post(self, text: str, blocks: list[dict[str, Any]]) -> Outcome:
        if self._hook is not None:
            response = self._hook.send(text=text, blocks=blocks)
            return http_outcome(response.status_code, response.headers)
        assert self._web is not None
        try:
            self._web.chat_postMessage(
                channel=self.receiver.channel or "", text=text, blocks=blocks
            )
        except SlackApiError as exc:
            status = exc.response.status_code
            if status == 429:
                return Outcome(False, "HTTP 429", retry_after_s=retry_after(exc.response.headers))
            error = str(exc.response.get("error", "")) if status < 300 else f"HTTP {status}"
            return Outcome(False, error or "slack error", retry=status >= 500 or status == 408)
        return Outcome(True)

    async def close(self) -> None:
        """Nothing to close (urllib connections are per request)."""


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
                {"type": "mrkdwn", "text": f"More: `{webhooks.show_command(alert['fingerprint'])}`"}
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
    iso = webhooks.iso(float(ts))
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{iso}>"


def build_senders(receivers: list[Receiver]) -> dict[str, Sender]:
    """Return a sender per receiver name."""
    out: dict[str, Sender] = {}
    for receiver in receivers:
        out[receiver.name] = (
            SlackSender(receiver) if receiver.kind == "slack" else WebhookSender(receiver)
        )
    return out
