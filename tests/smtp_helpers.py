"""A real SMTP server on loopback for the email tests (aiosmtpd), with scripted answers, an
optional login and STARTTLS or implicit TLS from a trustme test CA."""

from __future__ import annotations

import email
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A loopback port nothing listens on (the server may start on it later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Got:
    """One message the server accepted: its envelope and the parsed mail."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """The server's handler: refuses ``bad_rcpt``, answers DATA with ``data_reply`` (None:
    250), and keeps what it accepted."""

    bad_rcpt: dict[str, str] = field(default_factory=dict)
    data_reply: Callable[[], str | None] = lambda: None
    got: list[Got] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:  # fmt: skip
        if address in self.bad_rcpt:
            return self.bad_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.data_reply()
        if reply is not None:
            return reply
        parsed = email.message_from_bytes(envelope.content, policy=default)
        with self.arrived:
            self.got.append(Got(envelope.mail_from, list(envelope.rcpt_tos), parsed))
            self.arrived.notify_all()
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:  # fmt: skip
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == b"pw-s3cret"
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=ok)

    def wait(self, n: int, timeout_s: float = 30.0) -> list[Got]:
        """Return the accepted messages once there are ``n`` (AssertionError at the deadline)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.got) >= n, timeout_s):
                raise AssertionError(f"{len(self.got)} of {n} messages arrived")
            return list(self.got)


@dataclass
class CertAuthority:
    """A trustme CA with a certificate for 127.0.0.1, and its PEM file for the client."""

    ca_file: str
    server_context: ssl.SSLContext


def make_ca(folder: Path) -> CertAuthority:
    """Return a fresh CA whose server context serves a certificate for 127.0.0.1."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    path = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return CertAuthority(str(path), context)


def smtp_server(
    inbox: Inbox,
    port: int,
    tls: CertAuthority | None = None,
    *,
    implicit: bool = False,
    login: bool = False,
) -> Controller:
    """Return an unstarted aiosmtpd server on 127.0.0.1:``port`` (STARTTLS required with
    ``tls``, TLS from the first byte with ``implicit``, a login required with ``login``)."""
    kwargs: dict[str, Any] = {}
    if tls is not None and implicit:
        kwargs["ssl_context"] = tls.server_context
    elif tls is not None:
        kwargs |= {"tls_context": tls.server_context, "require_starttls": True}
    if login:
        kwargs |= {"authenticator": inbox.authenticate, "auth_required": True}
    return Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
