"""Delivery status notifications: RFC 3464 ``multipart/report`` messages, and RFC 3461's wishes.

``build_dsn`` writes one DSN for a set of recipients of one message that
failed for good (bounced or expired) in one attempt, or one for
recipients that asked for success notices (``NOTIFY=SUCCESS``) and were
relayed to a server that does not do DSN (``action="relayed"``), or a delay
warning for recipients still being retried (``action="delayed"``: ``Status``
``4.x.x`` from the last reply, ``Will-Retry-Until`` the lifetime's end, and
only the header block returned whatever ``RET`` asked, which concerns failure
DSNs):

1. ``text/plain``: what happened, for people;
2. ``message/delivery-status``: ``Reporting-MTA``, ``Original-Envelope-Id``
   (the ``ENVID`` given at MAIL, if any), ``Arrival-Date``, then per recipient
   ``Original-Recipient`` (its ``ORCPT``, if any), ``Final-Recipient``,
   ``Action``, ``Status`` (for a failure the reply's enhanced code when it has
   the reply's class, else ``4.0.0``/``5.0.0``: never ``2.x.x``; for a success
   ``2.x.x``), ``Remote-MTA`` (the MX's name, when a host was reached or
   named), ``Diagnostic-Code: smtp; <the remote's reply>`` and
   ``Last-Attempt-Date``;
3. what ``RET`` asked for: ``RET=FULL`` returns the whole message
   (``message/rfc822``) when it is at most ``FULL_RETURN_LIMIT`` bytes (as
   Postfix's ``bounce_size_limit``); ``RET=HDRS``, no ``RET``, or a larger
   message: the header block only (``text/rfc822-headers``, RFC 6522).

When an address or the returned part is not ASCII, the internationalised forms
of RFC 6533 are used (``message/global-delivery-status``,
``message/global-headers``/``message/global``, ``utf-8;`` address type).

``NOTIFY`` decides who is reported: ``failure_notices`` keeps the failed
recipients whose ``NOTIFY`` is absent or includes ``FAILURE`` (``NEVER``, or a
list without ``FAILURE``, asks for none), ``wants_success_notice`` is
``NOTIFY`` including ``SUCCESS``, ``wants_delay_notice`` is ``NOTIFY`` absent
or including ``DELAY``. ``wants_dsn`` says whether a failure DSN may go at all: to a real
sender, for a message that is not itself a bounce, with at least one recipient
that did not refuse failure notices.

``dsn_envelope`` is the envelope it travels under: null sender, the original
sender as the only recipient, ``is_bounce`` set (so it is never bounced), and
a message id derived from the original's and the attempt (``<id>.B<attempt>``,
``.S<attempt>`` for success notices, ``.D<attempt>`` for delay warnings, or the
``tag`` a caller gives, e.g. for a bounce by an operator) so a DSN published
twice after a crash is visibly the same DSN. ``bounce`` bundles the bytes, the envelope and the
``dsn_sent`` event for a service. ``xtext_encode``/``xtext_decode``
are RFC 3461 4's xtext (``ENVID``, ``ORCPT``). Pure functions, no I/O.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from postline.models import Envelope, Event, EventKind, Peer, stable_event_id
from postline.reply import SmtpReply

_HEADER_LIMIT = 64 * 1024
FULL_RETURN_LIMIT = 50_000
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")


@dataclass(frozen=True)
class FailedRecipient:
    """One recipient that failed for good, the reply that decided it and the host (if any)."""

    recipient: str
    reply: SmtpReply
    mx: Peer | None = None
    expired: bool = False


def xtext_encode(text: str) -> str:
    """RFC 3461 4 xtext: ``+``, ``=``, controls and non-ASCII (as UTF-8) become ``+HH``."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        out.append(char if 33 <= byte <= 126 and char not in "+=" else f"+{byte:02X}")
    return "".join(out)


def xtext_decode(text: str) -> str:
    """The text an xtext stands for; ``ValueError`` if it is not xtext (RFC 3461 4)."""
    if any(not 33 <= ord(c) <= 126 or c == "=" for c in text):
        raise ValueError("xtext holds only printable ASCII other than '='")
    if "+" in _XTEXT_HEX.sub("", text):
        raise ValueError("'+' in xtext must be followed by two upper-case hex digits")
    raw = _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), text)
    return raw.encode("latin-1").decode("utf-8")


def notify_of(envelope: Envelope, recipient: str) -> tuple[str, ...] | None:
    """The recipient's ``NOTIFY`` keywords, or None when it gave none."""
    params = envelope.rcpt_params.get(recipient)
    return None if params is None else params.notify


def failure_notices(envelope: Envelope, failed: Sequence[FailedRecipient]) -> list[FailedRecipient]:
    """The failed recipients whose ``NOTIFY`` allows a failure DSN (absent, or FAILURE)."""
    kept = []
    for item in failed:
        notify = notify_of(envelope, item.recipient)
        if notify is None or "FAILURE" in notify:
            kept.append(item)
    return kept


def wants_success_notice(envelope: Envelope, recipient: str) -> bool:
    notify = notify_of(envelope, recipient)
    return notify is not None and "SUCCESS" in notify


def wants_delay_notice(envelope: Envelope, recipient: str) -> bool:
    """RFC 3461 4.1: no ``NOTIFY`` (the MTA may warn) or one including ``DELAY``."""
    notify = notify_of(envelope, recipient)
    return notify is None or "DELAY" in notify


def wants_dsn(envelope: Envelope) -> bool:
    """A DSN goes to a real sender of a message that is not itself a bounce, unless every
    recipient refused failure notices."""
    if not envelope.mail_from or envelope.is_bounce:
        return False
    return any(
        (notify := notify_of(envelope, r)) is None or "FAILURE" in notify for r in envelope.rcpt_to
    )


def dsn_envelope(original: Envelope, now: datetime, attempt: int = 0, kind: str = "B") -> Envelope:
    return Envelope(
        message_id=f"{original.message_id}.{kind}{attempt}",
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


_KINDS = {  # action -> (Subject, first line for people, why per recipient)
    "failed": (
        "Undelivered Mail Returned to Sender",
        "Your message could not be delivered to one or more recipients.",
        "rejected",
    ),
    "relayed": (
        "Successful Mail Delivery Report",
        "Your message was relayed; the next server does not offer delivery notifications.",
        "relayed to a server that sends no further notifications",
    ),
    "delayed": (
        "Delayed Mail (still being retried)",
        "Your message could not be delivered yet to one or more recipients. It will be "
        "tried again; you do not need to resend it.",
        "not delivered yet",
    ),
}
_TAGS = {"failed": "B", "relayed": "S", "delayed": "D"}


def build_dsn(
    original: Envelope,
    body: bytes,
    items: Sequence[FailedRecipient],
    *,
    reporting_mta: str,
    dsn_message_id: str,
    now: datetime,
    action: str = "failed",
    retry_until: datetime | None = None,
) -> bytes:
    """The DSN's RFC 5322 bytes (CRLF line ends); ``action``: failed, relayed or delayed.

    ``retry_until`` (delayed): when the recipients expire (``Will-Retry-Until``).
    """
    subject = _KINDS[action][0]
    boundary = f"=_postline_{uuid.uuid4().hex}"
    returned, full, note = _returned(original, body, action)
    addresses = "".join(i.recipient + (_orcpt(original, i.recipient) or "") for i in items)
    international = not returned.isascii() or not addresses.isascii()
    status_type = "message/global-delivery-status" if international else "message/delivery-status"
    if full:
        returned_type = "message/rfc822" if returned.isascii() else "message/global"
    else:
        returned_type = "message/global-headers" if international else "text/rfc822-headers"
    top = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{original.mail_from}>",
        f"Subject: {subject}",
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
        *_human_text(original, items, reporting_mta, action, note, retry_until),
        "",
        f"--{boundary}",
        f"Content-Type: {status_type}",
        "",
        *_status_fields(original, items, reporting_mta, action, now, retry_until),
        "",
        f"--{boundary}",
        f"Content-Type: {returned_type}",
        "",
    ]
    text = "\r\n".join(top).encode("utf-8") + b"\r\n"
    tail = f"\r\n\r\n--{boundary}--\r\n".encode()
    return text + _crlf(returned) + tail


def _returned(original: Envelope, body: bytes, action: str) -> tuple[bytes, bool, str]:
    """What goes back of the message (per ``RET``), whether it is all of it, a note."""
    if original.ret == "FULL" and action != "delayed":
        if len(body) <= FULL_RETURN_LIMIT:
            return body.rstrip(b"\r\n"), True, ""
        note = f"The message is larger than {FULL_RETURN_LIMIT} bytes: only its headers follow."
        return original_headers(body), False, note
    return original_headers(body), False, ""


def _orcpt(original: Envelope, recipient: str) -> str | None:
    params = original.rcpt_params.get(recipient)
    return None if params is None else params.orcpt


def _human_text(
    original: Envelope,
    items: Sequence[FailedRecipient],
    reporting_mta: str,
    action: str,
    note: str,
    retry_until: datetime | None,
) -> list[str]:
    _, intro, why = _KINDS[action]
    lines = [f"This is the mail system at host {reporting_mta}.", "", intro]
    if retry_until is not None:
        lines.append(f"It will be tried until {format_datetime(retry_until)}.")
    lines += [f"Queue id: {original.message_id}", ""]
    for item in items:
        what = "gave up: delivery time expired" if item.expired else why
        where = f" by {item.mx.label}" if item.mx else ""
        lines.append(f"<{item.recipient}>: {what}{where}: {item.reply}")
    return [*lines, "", note] if note else lines


def _status_fields(
    original: Envelope,
    items: Sequence[FailedRecipient],
    reporting_mta: str,
    action: str,
    now: datetime,
    retry_until: datetime | None,
) -> list[str]:
    lines = [f"Reporting-MTA: dns; {reporting_mta}"]
    if original.envid:
        lines.append(f"Original-Envelope-Id: {_one_line(original.envid)}")
    lines.append(f"X-Postline-Queue-ID: {original.message_id}")
    lines.append(f"Arrival-Date: {format_datetime(original.received_at)}")
    for item in items:
        lines.append("")
        orcpt = _orcpt(original, item.recipient)
        if orcpt:
            kind, _, address = orcpt.partition(";")
            lines.append(f"Original-Recipient: {kind}; {_one_line(address)}")
        kind = "rfc822" if item.recipient.isascii() else "utf-8"
        lines += [f"Final-Recipient: {kind}; {item.recipient}", f"Action: {action}"]
        lines.append(f"Status: {_status(action, item.reply)}")
        if item.mx:
            lines.append(f"Remote-MTA: dns; {item.mx.name}")
        lines.append(f"Diagnostic-Code: smtp; {_one_line(str(item.reply))[:900]}")
        lines.append(f"Last-Attempt-Date: {format_datetime(now)}")
        if action == "delayed" and retry_until is not None:
            lines.append(f"Will-Retry-Until: {format_datetime(retry_until)}")
    return lines


def _status(action: str, reply: SmtpReply) -> str:
    """Failed: ``status_of``; relayed: ``2.x.x``; delayed: ``4.x.x`` (RFC 3464 2.3.4)."""
    if action == "failed":
        return status_of(reply)
    wanted = "2" if action == "relayed" else "4"
    return reply.enhanced if reply.enhanced and reply.enhanced[0] == wanted else f"{wanted}.0.0"


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


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
    action: str = "failed",
    tag: str | None = None,
    retry_until: datetime | None = None,
) -> tuple[bytes, Envelope, Event]:
    """The DSN for ``failed`` (those whose ``NOTIFY`` allows one), its envelope and its event.

    ``action="relayed"``/``"delayed"``: the success notice or delay warning for the
    recipients given in ``failed`` (the caller chose them by their ``NOTIFY``).
    ``tag`` (a letter) replaces the action's in the DSN's message id and is added to
    its event id: for a DSN that is not the outcome of attempt ``attempt`` (an
    operator's bounce, a held message expiring). ``ValueError`` when no recipient is
    left to report (check ``failure_notices``).
    """
    notices = failure_notices(original, failed) if action == "failed" else list(failed)
    if not notices:
        raise ValueError("no recipient asked for this notice")
    envelope = dsn_envelope(original, now, attempt, tag or _TAGS[action])
    data = build_dsn(
        original, body, notices, reporting_mta=reporting_mta,
        dsn_message_id=envelope.message_id, now=now, action=action, retry_until=retry_until,
    )  # fmt: skip
    parts = (() if action == "failed" else (action,)) + ((tag,) if tag else ())
    what = {"failed": "delivery status notification", "relayed": "success notification"}.get(
        action, "delay warning"
    )
    event = Event(
        event_id=stable_event_id(original.message_id, attempt, EventKind.DSN_SENT, *parts),
        kind=EventKind.DSN_SENT,
        service=service,
        message_id=original.message_id,
        mail_from=original.mail_from,
        rcpt_to=tuple(i.recipient for i in notices),
        attempt=attempt,
        reason=f"{what} {envelope.message_id} queued to <{original.mail_from}>",
    )
    return data, envelope, event
