"""The ``llmtap alerts`` command: rules, active alerts, one alert, and silences.

``llmtap alerts rules`` checks the rules file and lists the rules in force, ``alerts list`` the
pending and firing alerts, ``alerts show FP`` one alert's state, ``alerts silence -m k=v --for 2h``
creates a silence, ``alerts silences`` lists them and ``alerts expire ID`` ends one. Silences
are kept by :mod:`llmtap.read.silences` (re-exported here).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import redis

from llmtap import keys
from llmtap.analyzers.rules import Rule, parse_duration
from llmtap.cli import common
from llmtap.read.alerts import alert_state
from llmtap.read.silences import create_silence, expire_silence, list_silences
from llmtap.settings import SettingsError

__all__ = [
    "active_alerts",
    "add_parsers",
    "alert_state",
    "create_silence",
    "expire_silence",
    "list_silences",
]


def active_alerts(client: redis.Redis, rules: list[Rule]) -> list[dict[str, Any]]:
    """Return the pending and firing alerts of every rule, with their state."""
    out = []
    for rule in rules:
        members: list[bytes] = client.zrange(keys.alert_active(rule.name), 0, -1)  # type: ignore[assignment]
        for fp in members:
            state = alert_state(client, _text(fp))
            if state:
                out.append(state)
    return out


# --- argparse ----------------------------------------------------------------------------


def add_parsers(subparsers: Any) -> None:
    """Register ``llmtap alerts`` and its subcommands."""
    alerts = subparsers.add_parser("alerts", help="alert rules, active alerts and silences")
    actions = alerts.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    rules = actions.add_parser("rules", help="check LLMTAP_ALERT_RULES and list the rules")
    rules.set_defaults(func=_rules)
    listing = actions.add_parser("list", help="pending and firing alerts")
    common.add_url(listing).set_defaults(func=_list)
    show = actions.add_parser("show", help="one alert's state and last notification")
    show.add_argument("fingerprint")
    common.add_url(show).set_defaults(func=_show)
    silence = actions.add_parser("silence", help="silence alerts whose labels match")
    silence.add_argument("-m", "--match", action="append", required=True, metavar="LABEL=VALUE")
    silence.add_argument("--for", dest="duration", default="2h", help="e.g. 30m, 2h, 1d")
    silence.add_argument("--comment", default="")
    silence.add_argument("--by", default="", help="who created it")
    common.add_url(silence).set_defaults(func=_silence)
    silences = actions.add_parser("silences", help="list the silences in force")
    common.add_url(silences).set_defaults(func=_silences)
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("silence_id")
    common.add_url(expire).set_defaults(func=_expire)


def _client(args: argparse.Namespace) -> redis.Redis:
    return common.client_for(args)


def _rules(args: argparse.Namespace) -> int:
    from llmtap.consumers.alerts.rules_file import rules_from_env
    from llmtap.consumers.notify.config import receivers_from_env

    for rule in rules_from_env():
        where = ", ".join(f"{k}={v}" for k, v in {**rule.filters, **rule.tags}.items()) or "all"
        print(f"{rule.name:24} {rule.kind:26} {rule.severity:9} {rule.threshold:g} [{where}]")
    for receiver in receivers_from_env():
        print(f"receiver {receiver.name} ({receiver.kind}, {len(receiver.routes)} routes)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from llmtap.consumers.alerts.rules_file import rules_from_env

    common.print_json(active_alerts(_client(args), rules_from_env()))
    return 0


def _show(args: argparse.Namespace) -> int:
    """Print one alert's state: typed numbers (``seq``), ISO-8601 UTC times, its document."""
    state = alert_state(_client(args), args.fingerprint)
    if not state:
        print(f"llmtap: no alert {args.fingerprint}", file=sys.stderr)
        return 1
    common.print_json(state)
    return 0


def _silence(args: argparse.Namespace) -> int:
    matchers = {}
    for item in args.match:
        label, sep, value = item.partition("=")
        if not sep or not label:
            raise SettingsError(f"--match {item!r}: expected LABEL=VALUE")
        matchers[label] = value
    try:
        duration = parse_duration("--for", args.duration)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    try:
        doc = create_silence(_client(args), matchers, duration, time.time(), args.comment, args.by)
    except ValueError as exc:
        raise SettingsError(f"--for {args.duration!r}: {exc}") from None
    common.print_json(doc)
    return 0


def _silences(args: argparse.Namespace) -> int:
    common.print_json(list_silences(_client(args), time.time()))
    return 0


def _expire(args: argparse.Namespace) -> int:
    if expire_silence(_client(args), args.silence_id):
        return 0
    print(f"llmtap: no silence {args.silence_id}", file=sys.stderr)
    return 1


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
