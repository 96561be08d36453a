"""One outbound SMTP session: where it goes, how long each reply may take, what was said.

``Target`` is one host to connect to, and how. ``Timeouts`` holds the seconds
each reply may take, with RFC 5321 section 4.5.3.2's defaults (greeting, MAIL
and RCPT 5 minutes, the DATA command 2 minutes, each block of the message 3
minutes, the reply after the final dot 10 minutes) plus EHLO/STARTTLS/AUTH/QUIT
(5 minutes, as Postfix) and a short RSET on a reused session.

``Connection`` is one open session (a ``StrictSMTP``) and its transcript lines
not yet handed out: every command and reply, never the message body (only its
size), never credentials. ``command(phase, line, timeout)`` sends one command
and returns the reply as an ``SmtpReply`` that ``phase`` may have (expected, or
a 4xx/5xx refusal: ``trouble.expect``); anything else raises
``ProtocolViolation`` after noting the remote's words, and the caller must not
go on with the session. ``reusable`` is true only while the session is open and
in step (nothing unread or unsolicited arrived on it); ``quit`` says QUIT only
to such a session and just closes any other.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from postline.delivery import metrics
from postline.delivery.dane import Tlsa
from postline.delivery.settings import TlsPolicy
from postline.delivery.smtpclient import ProtocolViolation, StrictSMTP
from postline.delivery.sources import Source
from postline.delivery.tlsrpt import PolicyType
from postline.delivery.trouble import Phase, UnexpectedReply, expect
from postline.reply import ReplyError, SmtpReply


@dataclass(frozen=True)
class Target:
    """One host to connect to, and how.

    ``tls_policy`` is the effective one (a transport security policy may have
    raised it); ``tlsa`` the DANE records the certificate must match (TLS is
    then mandatory); ``sts`` the MTA-STS mode it is delivered under;
    ``tls_fallback`` the policy to try again with, on a new session, when TLS
    fails (opportunistic: ``none``; MTA-STS testing: the domain's own policy);
    ``domain`` and ``policy_type`` name the TLS report entry (``tlsrpt``);
    ``source`` the local address and EHLO name; ``note`` a transcript line
    saying which policy applies.
    """

    mx: str
    address: str
    port: int
    tls_policy: TlsPolicy = "opportunistic"
    credentials: tuple[str, str] | None = None
    tlsa: tuple[Tlsa, ...] = ()
    sts: Literal["enforce", "testing"] | None = None
    tls_fallback: TlsPolicy | None = None
    domain: str = ""
    policy_type: PolicyType = "no-policy-found"
    source: Source | None = None
    note: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """Postfix style: ``mx.example.org[192.0.2.1]:25``."""
        return f"{self.mx}[{self.address}]:{self.port}"

    @property
    def fallback(self) -> TlsPolicy | None:
        """The policy a failed TLS handshake is retried with, if any."""
        if self.tls_fallback is not None:
            return self.tls_fallback
        return "none" if self.tls_policy == "opportunistic" and not self.tlsa else None

    @property
    def key(self) -> tuple[object, ...]:
        """Sessions are shared only between targets with all of these equal."""
        user = self.credentials[0] if self.credentials else ""
        source = self.source.address if self.source else ""
        return (
            self.mx,
            self.address,
            self.port,
            self.tls_policy,
            user,
            source,
            self.tlsa,
            self.sts,
        )


@dataclass(frozen=True)
class Timeouts:
    """Seconds each reply may take (module docstring)."""

    greeting: float = 300.0
    command: float = 300.0  # EHLO/HELO, STARTTLS, AUTH, QUIT
    mail: float = 300.0
    rcpt: float = 300.0
    data_init: float = 120.0
    data_block: float = 180.0
    data_done: float = 600.0
    rset: float = 10.0


@dataclass
class Connection:
    """One SMTP session to ``target`` and the transcript lines not yet handed out."""

    target: Target
    smtp: StrictSMTP
    timeouts: Timeouts = field(default_factory=Timeouts)
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    lines: list[str] = field(default_factory=list)
    transactions: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    tls: str = "plaintext"  # plaintext, unverified or verified (the certificate check)
    tls_version: str | None = None  # e.g. TLSv1.3, once STARTTLS succeeded
    tls_cipher: str | None = None
    counted: bool = False
    reported: bool = False  # its TLS outcome is in the TLS reports (``starttls.report``)

    def note(self, line: str) -> None:
        self.lines.append(line)

    def replied(self, code: int, message: str) -> None:
        for line in message.splitlines() or [""]:
            self.lines.append(f"< {code} {line}".rstrip())

    def take_lines(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines

    @property
    def alive(self) -> bool:
        return self.smtp.is_connected

    @property
    def reusable(self) -> bool:
        return self.alive and self.smtp.in_step

    async def command(
        self, phase: Phase, line: str, timeout: float, shown: str | None = None
    ) -> SmtpReply:
        """Send ``line`` (``shown`` in the transcript); its reply if ``phase`` may have it.

        Any other reply, or a malformed one, or input out of step raises
        ``ProtocolViolation``.
        """
        self.note(f"> {shown or line}")
        try:
            response = await self.smtp.execute_command(line.encode(), timeout=timeout)
        except ProtocolViolation as violation:
            self.noted(violation)
            raise
        self.replied(response.code, response.message)
        return expect(phase, response.code, response.message)

    async def message(self, body: bytes) -> SmtpReply:
        """Send ``body`` and the final dot (DATA got 354); the end-of-data reply, judged."""
        response = await self.smtp.send_message_data(
            body, block_timeout=self.timeouts.data_block, reply_timeout=self.timeouts.data_done
        )
        self.replied(response.code, response.message)
        return expect(Phase.END_OF_DATA, response.code, response.message)

    def noted(self, violation: ProtocolViolation) -> None:
        """Put what the remote sent, that broke the protocol, in the transcript."""
        if isinstance(violation, UnexpectedReply):
            return  # a whole reply, noted as it came
        if violation.response is not None:
            self.replied(violation.response.code, violation.response.message)
        self.note(f"< {violation.words}")

    def note_out_of_step(self) -> None:
        """Say in the transcript why this session is not used again (if it is out of step)."""
        violation = self.smtp.out_of_step
        if violation is not None:
            self.note(f"out of step: {violation.what}: '{violation.words}'; session closed")

    def abort(self) -> None:
        self.smtp.close()
        self._uncount()

    async def quit(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(Exception):
            if self.smtp.is_connected and self.smtp.in_step:
                await self.smtp.quit(timeout=timeout)
        self.smtp.close()
        self._uncount()

    def _uncount(self) -> None:
        if self.counted:
            self.counted = False
            metrics.CONNECTIONS_OPEN.dec()


class HostFailure(ReplyError):
    """This host cannot take mail now; ``reply`` says why (``remote``: in its own words)."""

    def __init__(
        self, reply: SmtpReply, phase: Phase, connection: Connection, remote: bool = False
    ) -> None:
        super().__init__(reply)
        self.phase = phase
        self.connection = connection
        self.remote = remote
