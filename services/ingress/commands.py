"""The SMTP commands of an ingress session (mixed into ``IngressSMTP``).

Syntax and sequence live here; policy (relay, sender ownership, rate limits,
queueing) is the handler's. Extensions advertised: PIPELINING, SIZE,
8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, DSN, STARTTLS (plain listeners with a
certificate, before TLS) and AUTH PLAIN LOGIN (only once TLS is active).
MAIL accepts SIZE, BODY=7BIT|8BITMIME, SMTPUTF8, AUTH= (ignored) and the
RFC 3461 RET=FULL|HDRS and ENVID=<xtext>; RCPT accepts NOTIFY=NEVER or
NOTIFY=<SUCCESS,FAILURE,DELAY> and ORCPT=<addr-type>;<xtext>, any other
parameter is ``555``. A malformed DSN parameter is ``501 5.5.4`` (``dsnparams``);
the decoded values travel in the transaction, then in the envelope.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from postline.ingress import metrics, replies
from postline.ingress.address import AddressError, Path, parse_path
from postline.ingress.data import Content
from postline.ingress.dsnparams import mail_dsn, rcpt_dsn
from postline.ingress.state import Connection, Listener, Shared, Transaction
from postline.reply import ReplyError, SmtpReply

if TYPE_CHECKING:
    from postline.ingress.settings import IngressSettings

_HELO_NAME = re.compile(r"^[!-~]{1,255}$")
Command = Callable[[str], Awaitable[None]]


class LineError(ReplyError):
    """A client line that cannot be a command; ``reply`` says why."""


class SessionTimeout(ReplyError):
    """A client took too long; the session ends with ``reply``."""


class Commands:
    """HELO .. QUIT; expects the attributes ``IngressSMTP`` provides."""

    shared: Shared
    settings: IngressSettings
    conn: Connection
    txn: Transaction | None
    hostname: str
    loop: asyncio.AbstractEventLoop
    push: Callable[[str], Awaitable[None]]
    say: Callable[[SmtpReply], Awaitable[None]]
    count_error: Callable[[], None]
    close: Callable[[], None]
    read_content: Callable[[], Awaitable[Content]]
    discard_pending: Callable[[], int]
    upgrade_tls: Callable[[str], Awaitable[bool]]
    smtp_AUTH: Command

    def command_table(self) -> dict[str, Command]:
        return {
            "HELO": self.smtp_HELO,
            "EHLO": self.smtp_EHLO,
            "MAIL": self.smtp_MAIL,
            "RCPT": self.smtp_RCPT,
            "DATA": self.smtp_DATA,
            "RSET": self.smtp_RSET,
            "NOOP": self.smtp_NOOP,
            "QUIT": self.smtp_QUIT,
            "VRFY": self.smtp_VRFY,
            "EXPN": self.smtp_EXPN,
            "HELP": self.smtp_HELP,
            "STARTTLS": self.smtp_STARTTLS,
            "AUTH": self.smtp_AUTH,
        }

    async def smtp_HELO(self, arg: str) -> None:
        await self._greet(arg, esmtp=False)

    async def smtp_EHLO(self, arg: str) -> None:
        await self._greet(arg, esmtp=True)

    async def _greet(self, name: str, *, esmtp: bool) -> None:
        if not _HELO_NAME.match(name):
            await self.say(replies.HELO_SYNTAX)
            return
        self.txn = None
        self.conn.helo, self.conn.esmtp = name, esmtp
        if not esmtp:
            await self.push(f"250 {self.hostname}")
            return
        lines = [self.hostname, *self._extensions()]
        # One write for the whole reply, not one write (and TCP segment) per line.
        await self.push("\r\n".join([*(f"250-{line}" for line in lines[:-1]), f"250 {lines[-1]}"]))

    def _extensions(self) -> list[str]:
        extensions = ["PIPELINING", f"SIZE {self.settings.max_message_size}", "8BITMIME"]
        extensions += ["SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"]
        if self.shared.tls is not None and not self.conn.tls:
            extensions.append("STARTTLS")
        if self.conn.tls:
            extensions.append("AUTH PLAIN LOGIN")
        return extensions

    async def smtp_MAIL(self, arg: str) -> None:
        if self.conn.helo is None:
            await self.say(replies.NEED_HELO)
            return
        if self.txn is not None:
            await self.say(replies.NESTED_MAIL)
            return
        text = _after_keyword(arg, "FROM:")
        if text is None:
            await self.say(replies.MAIL_SYNTAX)
            return
        try:
            path = parse_path(text, allow_null=True)
        except AddressError as error:
            await self.say(replies.NEEDS_SMTPUTF8 if error.needs_smtputf8 else replies.BAD_SENDER)
            return
        checked = self._mail_parameters(path, text)
        if isinstance(checked, SmtpReply):
            await self.say(checked)
            return
        reply = await self.shared.handler.handle_MAIL(self.conn, path.mailbox)
        if reply.code == 250:
            self.txn = checked
        await self.say(reply)

    def _mail_parameters(self, path: Path, text: str) -> Transaction | SmtpReply:
        params = dict(path.params)
        if params and not self.conn.esmtp:
            return replies.MAIL_SYNTAX
        smtputf8 = "SMTPUTF8" in params
        if params.pop("SMTPUTF8", None) is not None:
            return replies.UNKNOWN_PARAMETER
        if not smtputf8 and not text.isascii():
            return replies.NEEDS_SMTPUTF8
        if params.pop("BODY", "7BIT") not in ("7BIT", "8BITMIME"):
            return replies.BAD_BODY
        params.pop("AUTH", None)
        size_text = params.pop("SIZE", None)
        dsn = mail_dsn(params)
        if isinstance(dsn, SmtpReply):
            return dsn
        if params:
            return replies.UNKNOWN_PARAMETER
        size: int | None = None
        if size_text is not None:
            if not size_text.isdigit() or len(size_text) > 20:
                return replies.BAD_SIZE
            size = int(size_text)
            if size > self.settings.max_message_size:
                metrics.REJECTIONS.labels("size_declared").inc()
                self.shared.handler.refused_size(self.conn, path.mailbox)
                return replies.TOO_BIG
        ret, envid = dsn
        return Transaction(
            path.mailbox, smtputf8=smtputf8, declared_size=size, ret=ret, envid=envid
        )

    async def smtp_RCPT(self, arg: str) -> None:
        if self.txn is None:
            await self.say(replies.NEED_MAIL)
            return
        text = _after_keyword(arg, "TO:")
        if text is None:
            await self.say(replies.RCPT_SYNTAX)
            return
        try:
            path = parse_path(text, allow_null=False, smtputf8=self.txn.smtputf8)
        except AddressError as error:
            await self.say(
                replies.NEEDS_SMTPUTF8 if error.needs_smtputf8 else replies.BAD_RECIPIENT
            )
            return
        dsn = rcpt_dsn(dict(path.params), self.txn.smtputf8)
        if isinstance(dsn, SmtpReply):
            await self.say(dsn)
            return
        assert path.mailbox is not None
        reply = await self.shared.handler.handle_RCPT(self.conn, self.txn, path.mailbox)
        if reply.code == 250:
            self.txn.rcpt_to[str(path.mailbox)] = None  # a repeat keeps its first place
            if dsn is not None and self.txn is not None:
                self.txn.rcpt_params.setdefault(str(path.mailbox), dsn)
        await self.say(reply)
        if reply is replies.TOO_MANY_RECIPIENTS:
            self.count_error()  # a 4xx, but repeating it is abuse: it ends the session too

    async def smtp_DATA(self, arg: str) -> None:
        if self.conn.helo is None:
            await self.say(replies.NEED_HELO)
            return
        if self.txn is None:
            await self.say(replies.NEED_MAIL)
            return
        if not self.txn.rcpt_to:
            await self.say(replies.NEED_RCPT)
            return
        if arg:
            await self.say(replies.NO_ARGUMENTS)
            return
        await self.push(str(replies.START_DATA))
        content = await self.read_content()
        txn, self.txn = self.txn, None
        if content.error is not None:
            metrics.MESSAGES.labels(
                "refused_content", metrics.reply_class(content.error.code)
            ).inc()
            self.shared.handler.refused_content(self.conn, txn, content.error)
            await self.say(content.error)
            return
        assert content.body is not None
        await self.say(await self.shared.handler.handle_DATA(self.conn, txn, content.body))

    async def smtp_RSET(self, arg: str) -> None:
        if arg:
            await self.say(replies.NO_ARGUMENTS)
            return
        self.txn = None
        await self.say(replies.RESET_OK)

    async def smtp_NOOP(self, arg: str) -> None:
        await self.say(replies.OK)

    async def smtp_QUIT(self, arg: str) -> None:
        await self.say(replies.BYE)
        self.close()

    async def smtp_VRFY(self, arg: str) -> None:
        await self.say(replies.VRFY_CANNOT)

    async def smtp_EXPN(self, arg: str) -> None:
        await self.say(replies.NOT_IMPLEMENTED)

    async def smtp_HELP(self, arg: str) -> None:
        await self.say(replies.HELP)

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.conn.tls:
            await self.say(replies.TLS_ACTIVE)
            return
        if self.shared.tls is None or self.conn.listener is not Listener.PLAIN:
            await self.say(replies.TLS_UNAVAILABLE)
            return
        if arg:
            await self.say(replies.NO_ARGUMENTS)
            return
        if self.discard_pending():  # sent before our 220: never read as encrypted input
            metrics.STARTTLS_INJECTIONS.inc()
        await self.say(replies.TLS_READY)
        if not await self.upgrade_tls("starttls"):
            self.close()


def _after_keyword(arg: str, keyword: str) -> str | None:
    """``FROM:<a@b>`` -> ``<a@b>`` (keyword case-insensitive); None if it is missing."""
    if arg[: len(keyword)].upper() != keyword:
        return None
    return arg[len(keyword) :]
