"""What the notifier delivers to: receivers, their routes and delivery policy, and one outcome.

A :class:`Receiver` is a webhook or a Slack destination with its routes (which alerts it
takes), its :class:`llmtap.retry.RetryPolicy` (attempts, backoff) and its
:class:`DeliveryPolicy` (request timeout, longest Retry-After honoured). A :class:`Sender`
makes one attempt and says what happened in an :class:`Outcome`. Secrets are never repr'd.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from llmtap.analyzers.rules import silenced
from llmtap.consumers.notify.email_settings import EmailSettings
from llmtap.retry import RetryPolicy

# HTTP answers that no retry can fix: dead-lettered at once.
NEVER_RETRY: Final = frozenset({400, 401, 403, 404, 405, 410, 413, 422})
# What a receiver takes from the outbox: alerts (the default), scheduled reports, or both.
TAKES_ALERTS: Final = ("alert",)
TAKES_REPORTS: Final = ("report",)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Per-request limits of one receiver: the request timeout and the longest Retry-After
    (s) honoured before the next attempt."""

    timeout_s: float = 5.0
    max_retry_after_s: float = 900.0


@dataclass(frozen=True)
class Route:
    """Which alerts a receiver gets: any of ``severities`` (empty: all) and every matcher."""

    severities: tuple[str, ...] = ()
    matchers: Mapping[str, str] = field(default_factory=dict)

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """True when the alert's severity and labels (plus ``rule``) fit this route."""
        if self.severities and alert.get("severity") not in self.severities:
            return False
        return silenced(alert_labels(alert), self.matchers)


@dataclass(frozen=True)
class Receiver:
    """One destination: a webhook (``url``, ``secret``), Slack (``url`` or ``token`` +
    ``channel``; ``base_url`` points the bot client elsewhere, for tests) or email
    (``email``). ``takes`` says which outbox messages it gets (alerts, reports)."""

    name: str
    kind: str
    url: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    channel: str | None = None
    base_url: str | None = None
    routes: tuple[Route, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    delivery: DeliveryPolicy = DeliveryPolicy()
    group_by: tuple[str, ...] = ("rule",)
    group_wait_s: float = 0.0
    group_interval_s: float = 0.0
    takes: tuple[str, ...] = TAKES_ALERTS
    email: EmailSettings | None = None  # an email receiver's SMTP server, addresses, subjects

    @property
    def grouping(self) -> bool:
        """True when notifications are batched per group (group_wait or group_interval set)."""
        return self.group_wait_s > 0 or self.group_interval_s > 0

    def group_key(self, alert: Mapping[str, Any]) -> str:
        """Return the group an alert belongs to at this receiver: its group_by label values."""
        labels = alert_labels(alert)
        return json.dumps([labels.get(label, "") for label in self.group_by])

    def wants(self, alert: Mapping[str, Any]) -> bool:
        """True when this receiver takes alerts and any route matches (no routes: every one)."""
        if "alert" not in self.takes:
            return False
        return not self.routes or any(route.matches(alert) for route in self.routes)


@dataclass(frozen=True)
class Outcome:
    """One attempt's result: delivered, or why not and whether (and when) to try again."""

    ok: bool
    reason: str = ""
    retry: bool = True
    retry_after_s: float | None = None


class Sender(Protocol):
    """Delivers one message to one receiver, once (no retries inside)."""

    async def send(self, alerts: Sequence[Mapping[str, Any]], now: float) -> Outcome:
        """Attempt delivery of one alert message (one alert, or a group); never raises for
        transport errors."""

    async def send_report(self, report: Mapping[str, Any], now: float) -> Outcome:
        """Attempt delivery of one report message; never raises for transport errors."""

    async def close(self) -> None:
        """Release connections."""


def alert_labels(alert: Mapping[str, Any]) -> dict[str, str]:
    """Return an alert's labels plus ``rule`` and ``severity``, for routes and silences."""
    labels = dict(alert.get("labels") or {})
    labels.setdefault("rule", str(alert.get("rule", "")))
    labels.setdefault("severity", str(alert.get("severity", "")))
    return labels


def retry_after(headers: Mapping[str, Any]) -> float | None:
    """Return a Retry-After header in seconds (integer form), or None."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            with contextlib.suppress(ValueError):
                return max(0.0, float(raw))
    return None


def http_outcome(status: int, headers: Mapping[str, Any]) -> Outcome:
    """Return the outcome of an HTTP answer: 2xx ok, NEVER_RETRY final, others retried."""
    if 200 <= status < 300:
        return Outcome(True)
    reason = f"HTTP {status}"
    if status in NEVER_RETRY:
        return Outcome(False, reason, retry=False)
    return Outcome(False, reason, retry_after_s=retry_after(headers))
