"""An email receiver's settings: the SMTP server and TLS mode, the login, the addresses, the
subject templates and the report formats attached, from the rules file or the environment.

The password is never in the rules file: the file names the variable that holds it
(``password_env: SMTP_PASSWORD``); the environment form reads ``LLMTAP_SMTP_PASSWORD``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from llmtap.analyzers.report_output import check_formats

TLS_MODES: Final = ("starttls", "implicit", "none")
DEFAULT_PORTS: Final = {"starttls": 587, "implicit": 465, "none": 25}
ALERT_SUBJECT: Final = "[llmtap] {status}: {rule} ({severity})"
REPORT_SUBJECT: Final = "[llmtap] {title}"
DEFAULT_ATTACH: Final = ("pdf", "xlsx")
# What each subject template may name, with sample values to check a template at start.
ALERT_FIELDS: Final = {"status": "FIRING", "rule": "r", "severity": "warning", "summary": "s",
                       "count": 1, "fingerprint": "f"}  # fmt: skip
REPORT_FIELDS: Final = {"title": "t", "schedule": "weekly", "since": "2026-01-01T00:00:00Z",
                        "until": "2026-01-08T00:00:00Z", "total_cost_usd": 1.0}  # fmt: skip
# The environment form: file key -> variable (the recipients' variables depend on the use).
ENV_VARS: Final = {
    "host": "LLMTAP_SMTP_HOST",
    "port": "LLMTAP_SMTP_PORT",
    "tls": "LLMTAP_SMTP_TLS",
    "username": "LLMTAP_SMTP_USERNAME",
    "ca_file": "LLMTAP_SMTP_CA_FILE",
    "from": "LLMTAP_EMAIL_FROM",
}


class FieldError(ValueError):
    """A bad email setting; ``key`` is its rules-file key (the environment names its variable)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class EmailSettings:
    """Where and how an email receiver sends: SMTP server, TLS mode, login, addresses,
    subject templates and the report formats it attaches. The password is never repr'd."""

    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    tls: str = "starttls"
    cc: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    subject: str = ALERT_SUBJECT
    report_subject: str = REPORT_SUBJECT
    attach: tuple[str, ...] = DEFAULT_ATTACH
    ca_file: str | None = None

    @property
    def recipients(self) -> list[str]:
        """Every envelope recipient: to, then cc."""
        return [*self.to, *self.cc]


def _addresses(key: str, raw: Any) -> tuple[str, ...]:
    values = raw.split(",") if isinstance(raw, str) else list(raw or [])
    out = tuple(str(v).strip() for v in values if str(v).strip())
    for value in out:
        if "@" not in value or any(c in value for c in "\r\n"):
            raise FieldError(key, f"{value!r} is not an email address")
    return out


def _template(key: str, raw: Any, default: str, sample: Mapping[str, Any]) -> str:
    text = default if raw in (None, "") else str(raw)
    try:
        text.format_map(sample)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        names = ", ".join(sample)
        raise FieldError(key, f"bad template {text!r} ({exc}); it may use {{{names}}}") from None
    return text


def _port(raw: Any, tls: str) -> int:
    if raw in (None, ""):
        return DEFAULT_PORTS[tls]
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise FieldError("port", f"{raw!r} is not a port number") from None
    if not 0 < port < 65_536:
        raise FieldError("port", f"{port} is not a port number (1-65535)")
    return port


def _attach(raw: Any) -> tuple[str, ...]:
    formats = _words(raw) if raw is not None else DEFAULT_ATTACH
    try:
        check_formats(formats)
    except ValueError as exc:
        raise FieldError("attach", str(exc)) from None
    return formats


def _words(raw: Any) -> tuple[str, ...]:
    values = raw.split(",") if isinstance(raw, str) else list(raw or [])
    return tuple(str(v).strip() for v in values if str(v).strip())


def parse_email(item: Mapping[str, Any], password: str | None) -> EmailSettings:
    """Return the settings of one email receiver mapping (rules-file keys: host, port, tls,
    username, from, to, cc, subject, report_subject, attach, ca_file); raise FieldError."""
    tls = str(item.get("tls") or "starttls")
    if tls not in TLS_MODES:
        raise FieldError("tls", f"{tls!r} is not one of {', '.join(TLS_MODES)}")
    for key in ("host", "from", "to"):
        if not item.get(key):
            raise FieldError(key, "required for an email receiver")
    username = str(item["username"]) if item.get("username") else None
    if username and not password:
        raise FieldError("password_env", "a username needs a password (password_env: VARIABLE)")
    return EmailSettings(
        host=str(item["host"]),
        port=_port(item.get("port"), tls),
        tls=tls,
        sender=_addresses("from", item["from"])[0],
        to=_addresses("to", item["to"]),
        cc=_addresses("cc", item.get("cc")),
        username=username,
        password=password,
        subject=_template("subject", item.get("subject"), ALERT_SUBJECT, ALERT_FIELDS),
        report_subject=_template(
            "report_subject", item.get("report_subject"), REPORT_SUBJECT, REPORT_FIELDS
        ),
        attach=_attach(item.get("attach")),
        ca_file=str(item["ca_file"]) if item.get("ca_file") else None,
    )


def email_from_file(item: Mapping[str, Any], env: Mapping[str, str]) -> EmailSettings:
    """Return a rules-file email receiver's settings, its password read from ``password_env``.

    Raises ValueError: a password given inline, an unset variable, or a bad field."""
    if "password" in item:
        raise ValueError("give password as password_env: VARIABLE, not inline")
    var = item.get("password_env")
    if var is not None and not env.get(str(var)):
        raise ValueError(f"password_env: environment variable {var} is not set")
    return parse_email(item, env.get(str(var)) if var else None)


def email_from_env(env: Mapping[str, str], use: str) -> EmailSettings | None:
    """Return the environment's email receiver for ``use`` (``ALERT`` or ``REPORT``): the
    shared ``LLMTAP_SMTP_*`` and ``LLMTAP_EMAIL_FROM`` with ``LLMTAP_{use}_EMAIL_TO`` (and
    ``_CC``; reports also ``LLMTAP_REPORT_EMAIL_ATTACH``), or None without recipients.

    Raises ValueError naming the variable of a bad or missing setting."""
    names = {**ENV_VARS, "to": f"LLMTAP_{use}_EMAIL_TO", "cc": f"LLMTAP_{use}_EMAIL_CC"}
    if use == "REPORT":
        names |= {"report_subject": "LLMTAP_REPORT_EMAIL_SUBJECT",
                  "attach": "LLMTAP_REPORT_EMAIL_ATTACH"}  # fmt: skip
    else:
        names["subject"] = f"LLMTAP_{use}_EMAIL_SUBJECT"
    names["password_env"] = "LLMTAP_SMTP_PASSWORD"
    if not env.get(names["to"]):
        return None
    item = {key: env.get(var) for key, var in names.items() if env.get(var)}
    try:
        return parse_email(item, env.get("LLMTAP_SMTP_PASSWORD") or None)
    except FieldError as exc:
        message = str(exc).removeprefix(f"{exc.key}: ")
        raise ValueError(f"{names.get(exc.key, exc.key)}: {message}") from None
