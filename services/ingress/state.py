"""Plain data of ingress sessions, and what all sessions of one process share.

``Connection`` lives as long as the TCP connection (it survives STARTTLS, which
only resets ``helo``); ``Transaction`` lives from MAIL to the end of DATA or
RSET. ``Shared`` holds the settings, the policy handler, the TLS context, the
session counters and the set of live sessions that a drain walks.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

from postline.ingress.address import Mailbox
from postline.ingress.data import Limits
from postline.ingress.limits import SessionCounter
from postline.ingress.settings import IngressSettings
from postline.ingress.tls import TlsContext
from postline.models import RecipientParams
from postline.netaddr import IPAddress
from postline.reply import SmtpReply

if TYPE_CHECKING:
    from postline.ingress.auth import Authenticator
    from postline.ingress.handler import IngressHandler


LOG_REPEATS = 5
"""Log lines of one kind a session writes before the rest are suppressed."""


class Listener(StrEnum):
    """Kind of listening socket a session came through."""

    PLAIN = "plain"
    IMPLICIT_TLS = "implicit_tls"


@dataclass
class Connection:
    """One client connection, as far as policy and logs need it."""

    listener: Listener
    session_id: str = field(default_factory=lambda: secrets.token_hex(6))
    peer_ip: IPAddress | None = None
    client_ip: IPAddress | None = None
    proxied: bool = False
    trusted: bool = False
    limit_key: str = "unknown"
    tls: bool = False
    tls_version: str | None = None
    tls_cipher: str | None = None
    helo: str | None = None
    esmtp: bool = False
    auth_user: str | None = None
    auth_failures: int = 0
    errors: int = 0
    logged: dict[str, int] = field(default_factory=dict)

    def may_log(self, what: str) -> bool | None:
        """Whether to log one more ``what`` line for this session.

        True for the first ``LOG_REPEATS``, None for the one after (log it
        saying further ones are suppressed), False after that: a client that
        repeats a refused command thousands of times cannot flood the logs.
        """
        count = self.logged.get(what, 0) + 1
        if count > LOG_REPEATS + 1:
            return False
        self.logged[what] = count
        return True if count <= LOG_REPEATS else None

    def log_fields(self) -> dict[str, object]:
        """Fields for ``extra=`` on log records about this session."""
        return {
            "session_id": self.session_id,
            "client_ip": str(self.client_ip) if self.client_ip else None,
        }


@dataclass
class Transaction:
    """MAIL FROM .. end of DATA."""

    mail_from: Mailbox | None
    smtputf8: bool = False
    declared_size: int | None = None
    rcpt_to: dict[str, None] = field(default_factory=dict)  # accepted, in order; O(1) repeats
    ret: Literal["FULL", "HDRS"] | None = None  # RFC 3461, decoded
    envid: str | None = None
    rcpt_params: dict[str, RecipientParams] = field(default_factory=dict)


class Drainable(Protocol):
    """What a drain needs from a live session."""

    def drain_now(self) -> None: ...

    def abort(self, reply: SmtpReply, why: str) -> None: ...


class Shared:
    """Everything the sessions of one ingress process share."""

    def __init__(
        self,
        settings: IngressSettings,
        handler: IngressHandler,
        authenticator: Authenticator,
        tls: TlsContext | None,
        hostname: str,
    ) -> None:
        self.settings = settings
        self.hostname = hostname
        self.handler = handler
        self.authenticator = authenticator
        self.tls = tls
        self.sessions = SessionCounter(settings.max_sessions, settings.max_sessions_per_ip)
        self.limits = Limits(
            settings.max_message_size, settings.max_header_lines, settings.max_header_size
        )
        self.live: set[Drainable] = set()
        self.all_closed = asyncio.Event()
        self.all_closed.set()
        self.draining = False

    def remember(self, session: Drainable) -> None:
        self.live.add(session)
        self.all_closed.clear()

    def forget(self, session: Drainable) -> None:
        self.live.discard(session)
        if not self.live:
            self.all_closed.set()

    def begin_drain(self) -> None:
        """Refuse new work; sessions idle outside a transaction are told 421 now."""
        self.draining = True
        for session in list(self.live):
            session.drain_now()
