"""One SMTP transaction (MAIL, RCPT per recipient, DATA, the message) on an open session.

``Transaction.run(connection)`` records each recipient's final reply in
``decided`` as it arrives: a refusal (4xx/5xx) at MAIL or RCPT, or the reply
after the final dot for every accepted recipient. Every reply is judged for its
phase (``trouble.expect``): MAIL must get 250, RCPT 250/251, the DATA command
354, the end of data a 2xx; the message is sent only after a 354, and a
recipient is delivered only by a 2xx after its final dot. What is sent is
chosen from what the server announced (``esmtp.negotiate``: SIZE, SMTPUTF8 or
A-labels, 8BITMIME or a 7-bit conversion, the DSN parameters); a message the
server cannot take is refused here (``552 5.3.4``, ``553 5.6.7``, ``554
5.6.3``) without starting the transaction. ``Decision.dsn_passed`` says the
server took over the delivery notifications (it announced DSN).

If the session fails midway (lost, timed out, cancelled by the attempt's
wall-clock cap, or a protocol error: a reply its phase cannot have, a malformed
reply, input out of step), ``run`` raises; ``phase`` says where, and recipients
not in ``decided`` are still undecided for the caller to settle (with a
temporary reply: never as delivered). Recipients refused earlier in the
transaction keep their refusal. A hang-up after the final dot is such a
failure. The message goes out with canonical CRLF line ends and dot-stuffing
(``StrictSMTP.send_message_data``), so no downstream server can read a second
message into it. A reply after the final dot that came with extra input
stands; the session is then out of step and is not used again.

Each ``Decision`` says ``where`` it was given as data (``Where``: the MX as a
``Peer``, the session id, the session's TLS), for the outcome events; no
``name[ip]:port`` string is made here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from postline.delivery.connection import Connection, Target
from postline.delivery.esmtp import Wire, negotiate
from postline.delivery.trouble import Phase
from postline.models import Peer, RecipientParams, TlsInfo
from postline.reply import SmtpReply


@dataclass(frozen=True)
class Where:
    """The host a reply came from (or was made up for) and, once connected, the session."""

    mx: Peer
    session_id: str | None = None
    tls: TlsInfo | None = None


def peer_of(target: Target) -> Peer:
    return Peer(name=target.mx, ip=target.address, port=target.port)


def where_of(connection: Connection) -> Where:
    """``connection``'s host, session id and TLS (None while plaintext), as data."""
    tls = None
    if connection.tls != "plaintext":
        verified = connection.tls == "verified"
        tls = TlsInfo(
            version=connection.tls_version, cipher=connection.tls_cipher, verified=verified
        )
    return Where(peer_of(connection.target), connection.session_id, tls)


@dataclass(frozen=True)
class Decision:
    """A recipient's reply, where it was given, and whether it is the remote's own words.

    ``dsn_passed``: the server announced DSN, so notifications are its job now;
    ``counted``: False when the attempt never started (destination busy), so it
    uses up no step of the retry schedule.
    """

    reply: SmtpReply
    phase: Phase
    where: Where | None
    remote: bool = True
    dsn_passed: bool = False
    counted: bool = True


@dataclass
class Transaction:
    """One MAIL/RCPT/DATA transaction for ``recipients`` of one message."""

    mail_from: str
    recipients: list[str]
    body: bytes
    smtputf8: bool = False
    auth_user: str | None = None
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    rcpt_params: dict[str, RecipientParams] = field(default_factory=dict)
    decided: dict[str, Decision] = field(default_factory=dict)
    phase: Phase = Phase.ROUTE
    where: Where | None = None  # the host being talked to, for replies made up on failure

    def decide_all(
        self,
        reply: SmtpReply,
        phase: Phase,
        where: Where | None,
        remote: bool = True,
        counted: bool = True,
    ) -> None:
        """Give ``reply`` to every recipient still undecided."""
        for recipient in self.recipients:
            decision = Decision(reply, phase, where, remote, counted=counted)
            self.decided.setdefault(recipient, decision)

    async def run(self, connection: Connection) -> None:
        self.where = where = where_of(connection)
        wire = await negotiate(self, connection.smtp)
        if isinstance(wire, SmtpReply):
            connection.note(f"not sent: {wire}")
            self.decide_all(wire, Phase.MAIL, where, remote=False)
            return
        for note in wire.notes:
            connection.note(note)
        self.phase = Phase.MAIL
        line = " ".join([f"MAIL FROM:<{wire.mail_from}>", *wire.mail_options])
        reply = await connection.command(Phase.MAIL, line, connection.timeouts.mail)
        if reply.code != 250:
            self.decide_all(reply, Phase.MAIL, where)
            return
        self.phase = Phase.RCPT
        accepted: list[str] = []
        for recipient in self.recipients:
            line = f"RCPT TO:{wire.rcpt_to[recipient]}"
            reply = await connection.command(Phase.RCPT, line, connection.timeouts.rcpt)
            if reply.code in (250, 251):
                accepted.append(recipient)
            else:
                self.decided[recipient] = Decision(reply, Phase.RCPT, where)
            if not connection.alive:  # 421: the server closed the session
                self.decide_all(reply, Phase.RCPT, where)
                return
        if accepted:
            await self._data(connection, accepted, wire)

    async def _data(self, connection: Connection, accepted: list[str], wire: Wire) -> None:
        self.phase = Phase.DATA
        shown = f"DATA ({len(wire.body)} bytes of message not logged)"
        reply = await connection.command(Phase.DATA, "DATA", connection.timeouts.data_init, shown)
        if reply.code == 354:
            self.phase = Phase.END_OF_DATA
            reply = await connection.message(wire.body)
        for recipient in accepted:
            self.decided[recipient] = Decision(reply, self.phase, self.where, dsn_passed=wire.dsn)
