"""One SMTP transaction (MAIL, RCPT per recipient, DATA) on an open session.

``Transaction.run(connection)`` records each recipient's final reply in
``decided`` as it arrives: a refusal at RCPT, or the reply after the final
dot for every accepted recipient. MAIL options are chosen from what the
server announced: ``SIZE`` (a message over the announced limit is refused
here, ``552 5.3.4``), ``SMTPUTF8`` (required for non-ASCII addresses; its
absence is ``553 5.6.7``), ``BODY=8BITMIME``.

If the session fails midway (lost, timed out, or cancelled by the attempt's
wall-clock cap), ``run`` raises; ``phase`` says where, and recipients not in
``decided`` are still undecided for the caller to settle. A hang-up after
the final dot is such a failure: those recipients are never counted as
delivered. aiosmtplib sends the body with canonical CRLF line ends and
dot-stuffing, so no downstream server can read a second message into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import aiosmtplib

from postline.delivery import replies
from postline.delivery.sender import Connection
from postline.delivery.trouble import Phase, remote_reply
from postline.reply import SmtpReply


@dataclass(frozen=True)
class Decision:
    reply: SmtpReply
    phase: Phase
    mx_host: str | None


@dataclass
class Transaction:
    """One MAIL/RCPT/DATA transaction for ``recipients`` of one message."""

    mail_from: str
    recipients: list[str]
    body: bytes
    smtputf8: bool = False
    decided: dict[str, Decision] = field(default_factory=dict)
    phase: Phase = Phase.ROUTE
    mx_host: str | None = None  # the host being talked to, for replies made up on failure

    def decide_all(self, reply: SmtpReply, phase: Phase, mx_host: str | None) -> None:
        """Give ``reply`` to every recipient still undecided."""
        for recipient in self.recipients:
            self.decided.setdefault(recipient, Decision(reply, phase, mx_host))

    async def run(self, connection: Connection) -> None:
        label = connection.target.label
        options = self._mail_options(connection)
        if isinstance(options, SmtpReply):
            connection.note(f"not sent: {options}")
            self.decide_all(options, Phase.MAIL, label)
            return
        self.phase = Phase.MAIL
        reply = await self._command(connection, "MAIL FROM:", self.mail_from, options)
        if reply.code != 250:
            self.decide_all(reply, Phase.MAIL, label)
            return
        self.phase = Phase.RCPT
        accepted: list[str] = []
        for recipient in self.recipients:
            reply = await self._command(connection, "RCPT TO:", recipient, [])
            if reply.code in (250, 251):
                accepted.append(recipient)
            else:
                self.decided[recipient] = Decision(reply, Phase.RCPT, label)
            if not connection.alive:  # 421: the server closed the session
                self.decide_all(reply, Phase.RCPT, label)
                return
        if accepted:
            await self._data(connection, accepted)

    def _mail_options(self, connection: Connection) -> list[str] | SmtpReply:
        smtp = connection.smtp
        options: list[str] = []
        if smtp.supports_extension("size"):
            limit = smtp.esmtp_extensions.get("size", "").strip()
            if limit.isdigit() and 0 < int(limit) < len(self.body):
                return replies.detailed(replies.MESSAGE_TOO_BIG, f"limit {limit} bytes")
            options.append(f"SIZE={len(self.body)}")
        needs_utf8 = self.smtputf8 or not all(
            a.isascii() for a in [self.mail_from, *self.recipients]
        )
        if needs_utf8:
            if not smtp.supports_extension("smtputf8"):
                return replies.SMTPUTF8_UNSUPPORTED
            options.append("SMTPUTF8")
        if smtp.supports_extension("8bitmime") and not self.body.isascii():
            options.append("BODY=8BITMIME")
        return options

    async def _command(
        self, connection: Connection, verb: str, address: str, options: list[str]
    ) -> SmtpReply:
        args = [f"{verb}<{address}>", *options]
        connection.note("> " + " ".join(args))
        response = await connection.smtp.execute_command(*(arg.encode() for arg in args))
        connection.replied(response.code, response.message)
        return remote_reply(response.code, response.message)

    async def _data(self, connection: Connection, accepted: list[str]) -> None:
        self.phase = Phase.DATA
        label = connection.target.label
        connection.note(f"> DATA ({len(self.body)} bytes of message not logged)")
        try:
            response = await connection.smtp.data(self.body)
        except aiosmtplib.SMTPDataError as error:
            connection.replied(error.code, error.message)
            reply = remote_reply(error.code, error.message)
        else:
            connection.replied(response.code, response.message)
            reply = remote_reply(response.code, response.message)
        for recipient in accepted:
            self.decided[recipient] = Decision(reply, Phase.DATA, label)
