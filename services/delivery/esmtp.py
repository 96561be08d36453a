"""What one transaction sends, given what the server announced (SIZE, SMTPUTF8, 8BITMIME, DSN).

``negotiate(transaction, server)`` returns the ``Wire`` form of a transaction
for one server, or the ``SmtpReply`` that refuses it there (the transaction
is then not started):

* **SMTPUTF8** (RFC 6531). A server that announces it gets the addresses as
  they are, with ``SMTPUTF8`` on MAIL when anything needs it (an address or a
  header field that is not ASCII) or the client asked for it. A server that
  does not gets IDN domains as A-labels (IDNA 2008; RFC 6531 3.2 allows this
  downgrade, and nothing else needs SMTPUTF8 then: 3.4 says not to ask for
  it); a non-ASCII local part or non-ASCII header fields cannot be downgraded:
  ``553 5.6.7``.
* **8BITMIME** (RFC 6152). An 8-bit body goes with ``BODY=8BITMIME`` to a
  server that announces 8BITMIME (or SMTPUTF8, which implies it); to any other
  it is converted to 7-bit MIME first (``mime7bit``: quoted-printable or
  base64), never sent as it is; when that is impossible: ``554 5.6.3``.
* **SIZE** (RFC 1870): ``SIZE=<bytes>`` of what is sent; larger than the
  server's announced limit: ``552 5.3.4``.
* **DSN** (RFC 3461). A server that announces it gets the envelope's ``RET``
  and ``ENVID`` on MAIL and each recipient's ``NOTIFY`` and ``ORCPT`` on RCPT
  (xtext), and ``Wire.dsn`` is true: that server now owns the notifications.

``Wire.notes`` says in the transcript what was adapted (counted in
``postline_delivery_conversions_total``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from postline.delivery import metrics, replies
from postline.delivery.idn import ascii_address
from postline.delivery.mime7bit import NotConvertible, to_7bit
from postline.dsn import original_headers, xtext_encode
from postline.models import RecipientParams
from postline.reply import SmtpReply

_THREAD_ABOVE = 64 * 1024  # convert bodies larger than this off the event loop


class Server(Protocol):
    """What ``negotiate`` needs to know of the server (``aiosmtplib.SMTP`` has it)."""

    esmtp_extensions: dict[str, str]

    def supports_extension(self, extension: str) -> bool: ...


class Envelope(Protocol):
    """The transaction's envelope fields ``negotiate`` reads."""

    @property
    def mail_from(self) -> str: ...
    @property
    def recipients(self) -> Sequence[str]: ...
    @property
    def body(self) -> bytes: ...
    @property
    def smtputf8(self) -> bool: ...
    @property
    def ret(self) -> str | None: ...
    @property
    def envid(self) -> str | None: ...
    @property
    def rcpt_params(self) -> Mapping[str, RecipientParams]: ...


@dataclass(frozen=True)
class Wire:
    """The transaction as it goes to one server."""

    mail_from: str
    mail_options: list[str]
    rcpt_to: dict[str, str]  # recipient (as queued) -> the RCPT TO argument
    body: bytes
    dsn: bool = False
    notes: list[str] = field(default_factory=list)


async def negotiate(tx: Envelope, server: Server) -> Wire | SmtpReply:
    """The ``Wire`` form of ``tx`` for ``server``, or the reply refusing it (docstring)."""
    utf8 = server.supports_extension("smtputf8")
    notes: list[str] = []
    addresses = _addresses([tx.mail_from, *tx.recipients], utf8, notes)
    if isinstance(addresses, SmtpReply):
        return addresses
    headers_ascii = original_headers(tx.body).isascii()
    if not utf8 and not headers_ascii:
        return replies.detailed(replies.SMTPUTF8_UNSUPPORTED, "the header fields are not ASCII")
    options: list[str] = []
    needs_utf8 = not headers_ascii or not all(a.isascii() for a in [tx.mail_from, *tx.recipients])
    if utf8 and (tx.smtputf8 or needs_utf8):
        options.append("SMTPUTF8")
    body = await _body(tx.body, utf8 or server.supports_extension("8bitmime"), options, notes)
    if isinstance(body, SmtpReply):
        return body
    if server.supports_extension("size"):
        limit = server.esmtp_extensions.get("size", "").strip()
        if limit.isdigit() and 0 < int(limit) < len(body):
            return replies.detailed(replies.MESSAGE_TOO_BIG, f"limit {limit} bytes")
        options.insert(0, f"SIZE={len(body)}")
    dsn = server.supports_extension("dsn")
    rcpt = {r: f"<{addresses[r]}>" for r in tx.recipients}
    if dsn:
        options += _mail_dsn(tx)
        rcpt = {r: " ".join([line, *_rcpt_dsn(tx.rcpt_params.get(r))]) for r, line in rcpt.items()}
    return Wire(addresses[tx.mail_from], options, rcpt, body, dsn, notes)


def _addresses(addresses: list[str], utf8: bool, notes: list[str]) -> dict[str, str] | SmtpReply:
    """Each address as it may be sent; A-labels for a server without SMTPUTF8."""
    sent: dict[str, str] = {}
    for address in addresses:
        if utf8 or address.isascii():
            sent[address] = address
            continue
        downgraded = ascii_address(address)
        if downgraded is None:
            return replies.detailed(replies.SMTPUTF8_UNSUPPORTED, "non-ASCII local part")
        sent[address] = downgraded
    if any(sent[a] != a for a in addresses):
        notes.append("IDN domains sent as A-labels: the server does not offer SMTPUTF8")
        metrics.CONVERSIONS.labels("a-label").inc()
    return sent


async def _body(
    body: bytes, eight_bit: bool, options: list[str], notes: list[str]
) -> bytes | SmtpReply:
    if body.isascii():
        return body
    if eight_bit:
        options.append("BODY=8BITMIME")
        return body
    try:
        if len(body) > _THREAD_ABOVE:
            converted = await asyncio.to_thread(to_7bit, body)
        else:
            converted = to_7bit(body)
    except NotConvertible as error:
        return replies.detailed(replies.CONVERSION_IMPOSSIBLE, str(error))
    notes.append("8-bit body converted to 7-bit MIME: the server does not offer 8BITMIME")
    metrics.CONVERSIONS.labels("7bit").inc()
    return converted


def _mail_dsn(tx: Envelope) -> list[str]:
    options = [f"RET={tx.ret}"] if tx.ret else []
    return [*options, f"ENVID={xtext_encode(tx.envid)}"] if tx.envid else options


def _rcpt_dsn(params: RecipientParams | None) -> list[str]:
    if params is None:
        return []
    options = [f"NOTIFY={','.join(params.notify)}"] if params.notify else []
    if params.orcpt:
        kind, _, address = params.orcpt.partition(";")
        if kind.lower() == "utf-8":
            address = "".join(c if c.isascii() else f"\\x{{{ord(c):X}}}" for c in address)
        options.append(f"ORCPT={kind};{xtext_encode(address)}")
    return options
