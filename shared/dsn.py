"""Delivery status notifications (bounces): RFC 3464 ``multipart/report`` messages.

``build_dsn`` writes one DSN for a set of recipients of one message that
failed for good (bounced or expired) in one attempt:

1. ``text/plain``: what happened, for people;
2. ``message/delivery-status``: ``Reporting-MTA``, ``Arrival-Date``, then per
   recipient ``Final-Recipient``, ``Action: failed``, ``Status`` (the reply's
   enhanced code when it has the reply's class, else ``4.0.0``/``5.0.0``: never
   ``2.x.x`` for a failure), ``Remote-MTA`` (the MX's name, from the
   recipient's ``mx``, when a host was reached or named),
   ``Diagnostic-Code: smtp; <the remote's reply>`` and ``Last-Attempt-Date``;
3. ``text/rfc822-headers``: the original message's header block (RFC 6522).

When an address or the original headers are not ASCII, the internationalised
forms of RFC 6533 are used (``message/global-delivery-status``,
``message/global-headers``, ``utf-8;`` address type).

``dsn_envelope`` is the envelope it travels under: null sender, the original
sender as the only recipient, ``is_bounce`` set (so it is never bounced), and
a message id derived from the original's and the attempt (``<id>.B<attempt>``)
so a DSN published twice after a crash is visibly the same DSN.
Whether to send one at all (never for a null sender, never for a bounce) is
``wants_dsn``'s decision. ``bounce`` bundles the three for a service: the DSN
bytes, its envelope and the ``dsn_sent`` event. Delivery (bounced, expired)
and filter (rejected) both use it. Pure functions, no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from postline.models import Envelope, Event, EventKind, Peer, stable_event_id
from postline.reply import SmtpReply

_HEADER_LIMIT = 64 * 1024


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient that failed for good, the reply that decided it and the host (if any)."""

    recipient: str
    reply: SmtpReply
    mx: Peer | None = None
    expired: bool = False


def wants_dsn(envelope: Envelope) -> bool:
    """A DSN goes to a real sender of a message that is not itself a bounce."""
    return bool(envelope.mail_from) and not envelope.is_bounce


def dsn_envelope(original: Envelope, now: datetime, attempt: int = 0) -> Envelope:
    return Envelope(
        message_id=f"{original.message_id}.B{attempt}",
        mail_from="",
        rcpt_to=(original.mail_from,),
        received_at=now,
        is_bounce=True,
        smtputf8=not original.mail_from.isascii(),
    )


def status_of(reply: SmtpReply) -> str:
    """RFC 3464 ``Status`` of a failure: never ``2.x.x`` (nor ``3.x.x``).

    The reply's enhanced code when it has the reply's class (``554 5.7.1``), else
    ``5.0.0`` for a 5xx and ``4.0.0`` for anything else: a failure recorded with a
    4xx, or (should one ever reach a DSN) with a 2xx/3xx that did not deliver.
    """
    failure_class = "5" if reply.is_permanent else "4"
    if reply.enhanced and reply.enhanced[0] == failure_class:
        return reply.enhanced
    return f"{failure_class}.0.0"


def original_headers(body: bytes) -> bytes:
    """The header block of ``body`` (up to the first empty line), capped at 64 KiB."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = body.find(separator)
        if end != -1:
            return body[: min(end, _HEADER_LIMIT)]
    return body[:_HEADER_LIMIT]


def build_dsn(
    original: Envelope,
    body: bytes,
    failed: Sequence[FailedRecipient],
    *,
    reporting_mta: str,
    dsn_message_id: str,
    now: datetime,
) -> bytes:
    """The DSN's RFC 5322 bytes (CRLF line ends)."""
    boundary = f"=_postline_{uuid.uuid4().hex}"
    headers = original_headers(body)
    international = not headers.isascii() or not all(f.recipient.isascii() for f in failed)
    status_type = "message/global-delivery-status" if international else "message/delivery-status"
    headers_type = "message/global-headers" if international else "text/rfc822-headers"
    top = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{original.mail_from}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(now)}",
        f"Message-ID: <{dsn_message_id}@{reporting_mta}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        *_human_text(original, failed, reporting_mta),
        "",
        f"--{boundary}",
        f"Content-Type: {status_type}",
        "",
        *_status_fields(original, failed, reporting_mta, now),
        "",
        f"--{boundary}",
        f"Content-Type: {headers_type}",
        "",
    ]
    text = "\r\n".join(top).encode("utf-8") + b"\r\n"
    tail = f"\r\n\r\n--{boundary}--\r\n".encode()
    return text + _crlf(headers) + tail


def _human_text(
    original: Envelope, failed: Sequence[FailedRecipient], reporting_mta: str
) -> list[str]:
    lines = [
        f"This is the mail system at host {reporting_mta}.",
        "",
        "Your message could not be delivered to one or more recipients.",
        f"Queue id: {original.message_id}",
        "",
    ]
    for item in failed:
        why = "gave up: delivery time expired" if item.expired else "rejected"
        where = f" by {item.mx.label}" if item.mx else ""
        lines.append(f"<{item.recipient}>: {why}{where}: {item.reply}")
    return lines


def _status_fields(
    original: Envelope, failed: Sequence[FailedRecipient], reporting_mta: str, now: datetime
) -> list[str]:
    lines = [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Postline-Queue-ID: {original.message_id}",
        f"Arrival-Date: {format_datetime(original.received_at)}",
    ]
    for item in failed:
        kind = "rfc822" if item.recipient.isascii() else "utf-8"
        lines += ["", f"Final-Recipient: {kind}; {item.recipient}", "Action: failed"]
        lines.append(f"Status: {status_of(item.reply)}")
        if item.mx:
            lines.append(f"Remote-MTA: dns; {item.mx.name}")
        diagnostic = " ".join(str(item.reply).split())[:900]
        lines.append(f"Diagnostic-Code: smtp; {diagnostic}")
        lines.append(f"Last-Attempt-Date: {format_datetime(now)}")
    return lines


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def bounce(
    original: Envelope,
    body: bytes,
    failed: Sequence[FailedRecipient],
    *,
    reporting_mta: str,
    service: str,
    attempt: int,
    now: datetime,
) -> tuple[bytes, Envelope, Event]:
    """The DSN for ``failed`` recipients of ``original``, its envelope and its event."""
    envelope = dsn_envelope(original, now, attempt)
    data = build_dsn(
        original, body, failed, reporting_mta=reporting_mta,
        dsn_message_id=envelope.message_id, now=now,
    )  # fmt: skip
    event = Event(
        event_id=stable_event_id(original.message_id, attempt, EventKind.DSN_SENT),
        kind=EventKind.DSN_SENT,
        service=service,
        message_id=original.message_id,
        mail_from=original.mail_from,
        rcpt_to=tuple(f.recipient for f in failed),
        attempt=attempt,
        reason=f"delivery status notification {envelope.message_id} queued "
        f"to <{original.mail_from}>",
    )
    return data, envelope, event
