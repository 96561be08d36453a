"""Built-in filter ``headers``: the header fix-ups Postfix's cleanup does.

* ``Message-ID: <MESSAGE_ID@HOSTNAME>`` when the message has none (the queue id,
  so the header and the trails name the same message);
* ``Date:`` (arrival time, RFC 5322 form) when the message has none;
* always a ``Received:`` trace field on top (RFC 5321 section 4.4)::

    Received: from HELO ([CLIENT-IP])
    \tby HOSTNAME (Postline) with ESMTPSA id MESSAGE_ID
    \tfor <RCPT>; DATE

  ``with`` is ``ESMTP`` plus ``S`` when the client used TLS and ``A`` when it
  authenticated (RFC 3848); the user name is never written. ``for`` appears
  only for a single recipient. Client-supplied strings (HELO, recipient) are
  reduced to safe characters so they cannot add fields or comments.

``[filter.headers]`` adds to that: ``remove`` drops every field of the
listed names (``X-Originating-IP``...) before anything is added;
``add`` appends fixed fields; ``hide_client = true`` writes the ``Received``
field without the ``from HELO ([IP])`` clause, so the client's name and
address do not leave the relay. Other existing fields are never changed and the
body is never touched. A filter with ``remove`` set rewrites the message (it
must run before ``dkim``). Always answers ``CONTINUE``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.models import Envelope

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

_HELO_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_ATOM = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_RCPT_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f<>()\\\u2028\u2029]")
_MAX_HELO = 255
_MAX_RCPT = 320


class HeadersFilter:
    """Adds Message-ID and Date when missing and a Received trace field."""

    name = "headers"

    def __init__(self, settings: FilterSettings) -> None:
        if not settings.hostname:
            raise ValueError("needs [filter] hostname (build() defaults it to [relay] hostname)")
        self.hostname = settings.hostname
        self.settings = settings.headers

    @property
    def rewrites_message(self) -> bool:
        return bool(self.settings.remove)

    async def apply(self, message: FilterMessage) -> Decision:
        envelope, headers = message.envelope, message.headers
        removed = sum(headers.remove(name) for name in self.settings.remove)
        added = []
        if "Message-ID" not in headers and _ATOM.match(envelope.message_id):
            headers.append("Message-ID", f"<{envelope.message_id}@{self.hostname}>")
            added.append("Message-ID")
        if "Date" not in headers:
            headers.append("Date", format_datetime(_arrival(envelope)))
            added.append("Date")
        for name, value in self.settings.add.items():
            headers.append(name, value)
            added.append(name)
        received = received_value(envelope, self.hostname, hide_client=self.settings.hide_client)
        headers.prepend("Received", received)
        reason = "added Received" + "".join(f", {name}" for name in added)
        return Decision.proceed(reason + (f"; removed {removed} fields" if removed else ""))


def received_value(envelope: Envelope, hostname: str, *, hide_client: bool = False) -> str:
    """The value of the ``Received`` field for ``envelope`` (folded with CRLF + tab)."""
    source = f"from {_safe_helo(envelope.helo)}"
    if (literal := _ip_literal(envelope.client_ip)) is not None:
        source += f" ({literal})"
    protocol = "ESMTP" + ("S" if envelope.tls else "") + ("A" if envelope.auth_user else "")
    by = f"by {hostname} (Postline) with {protocol}"
    if _ATOM.match(envelope.message_id):
        by += f" id {envelope.message_id}"
    date = format_datetime(_arrival(envelope))
    lines = [by] if hide_client else [source, by]
    recipient = _safe_recipient(envelope)
    if recipient is not None:
        lines.append(f"for <{recipient}>; {date}")
    else:
        lines[-1] += f"; {date}"
    return "\r\n\t".join(lines)


def _arrival(envelope: Envelope) -> datetime:
    at = envelope.received_at
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _safe_helo(helo: str | None) -> str:
    if not helo:
        return "unknown"
    return _HELO_UNSAFE.sub("?", helo[:_MAX_HELO])


def _ip_literal(client_ip: str | None) -> str | None:
    if not client_ip:
        return None
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        return f"[IPv6:{address.compressed}]"
    return f"[{address}]"


def _safe_recipient(envelope: Envelope) -> str | None:
    """The single recipient if it can be written into a header as is, else ``None``."""
    if len(envelope.rcpt_to) != 1:
        return None
    recipient = envelope.rcpt_to[0]
    if not recipient or len(recipient) > _MAX_RCPT or _RCPT_UNSAFE.search(recipient):
        return None
    if not recipient.isascii() and not envelope.smtputf8:
        return None
    return recipient
