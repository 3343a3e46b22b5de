"""Where the notifier's receivers come from: the rules file and the environment.

Alert receivers come from the ``receivers:`` section of the rules file (``LLMTAP_ALERT_RULES``)
and from the environment (``LLMTAP_ALERT_WEBHOOK_URL`` + ``LLMTAP_ALERT_WEBHOOK_SECRET``,
``LLMTAP_SLACK_WEBHOOK_URL``, ``LLMTAP_SLACK_BOT_TOKEN`` + ``LLMTAP_SLACK_CHANNEL``, and email:
``LLMTAP_SMTP_*`` with ``LLMTAP_ALERT_EMAIL_TO`` or ``LLMTAP_REPORT_EMAIL_TO``). A secret in the
file is given as ``secret_env: NAME`` (``password_env`` for email), never inline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from llmtap.analyzers.rules import SEVERITIES, RuleError, parse_document, parse_duration
from llmtap.consumers.alerts.rules_file import read_rules_text
from llmtap.consumers.notify.email_settings import email_from_env, email_from_file
from llmtap.consumers.notify.model import (
    TAKES_ALERTS,
    TAKES_REPORTS,
    DeliveryPolicy,
    Receiver,
    Route,
)
from llmtap.retry import RetryPolicy
from llmtap.settings import SettingsError, environ_or_process

KINDS: Final = ("webhook", "slack", "email")


def receivers_from_env(environ: Mapping[str, str] | None = None) -> list[Receiver]:
    """Return the env receivers plus those of the rules file; SettingsError on a bad one."""
    env = environ_or_process(environ)
    out = _env_receivers(env)
    path = env.get("LLMTAP_ALERT_RULES")
    if path:
        try:
            out += parse_receivers(read_rules_text(path), env, path)
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
    for name, use, takes in (
        ("email", "ALERT", TAKES_ALERTS),
        ("report-email", "REPORT", TAKES_REPORTS),
    ):
        try:
            email = email_from_env(env, use)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        if email is not None:
            out.append(Receiver(name, "email", email=email, takes=takes))
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
    fields = {"email": email_from_file(item, env)} if kind == "email" else _http(item, env)
    return Receiver(
        str(item["name"]),
        kind,
        **fields,
        takes=_takes(item.get("takes", TAKES_ALERTS)),
        routes=tuple(_route(r) for r in item.get("routes") or []),
        **_policies(item.get("retry") or {}),
        **_grouping(item),
    )


def _http(item: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    secrets = {k: _secret(item, k, env) for k in ("url", "secret", "token")}
    if not (secrets["url"] or secrets["token"]):
        raise ValueError(f"{item['name']}: needs url (or url_env), or token_env and channel")
    return {**secrets, "channel": item.get("channel"), "base_url": item.get("base_url")}


def _takes(raw: Any) -> tuple[str, ...]:
    """Return what a receiver takes from the outbox (``takes: [alert, report]``)."""
    values = tuple([raw] if isinstance(raw, str) else raw or ())
    if not values or not set(values) <= {*TAKES_ALERTS, *TAKES_REPORTS}:
        raise ValueError(f"takes {list(values)!r} must list alert and/or report")
    return values


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


def _policies(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``retry`` and ``delivery`` policies of a receiver's ``retry:`` mapping."""
    values: dict[str, Any] = {}
    if "attempts" in raw:
        values["attempts"] = int(raw["attempts"])
    for key in ("base", "cap"):
        if key in raw:
            values[f"{key}_s"] = parse_duration(key, raw[key])
    if "jitter" in raw:
        values["jitter"] = float(raw["jitter"])
    delivery = DeliveryPolicy()
    if "timeout" in raw:
        delivery = DeliveryPolicy(timeout_s=parse_duration("timeout", raw["timeout"]))
    return {"retry": RetryPolicy(**values), "delivery": delivery}
