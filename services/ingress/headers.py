"""The ``Message-ID`` and ``Subject`` a ``received`` event carries, so people can find mail.

``header_section(body)`` keeps the header section of a queued message (up to
the empty line, at most ``HEAD_LIMIT`` octets); ``summary(head, subject=...)``
decodes the two fields with the ``email`` package (RFC 2047 encoded words,
UTF-8 headers) and makes each one line: control characters become spaces,
bytes that are not UTF-8 become U+FFFD, and the result is cut to ``LIMIT``
characters. A field that is missing, empty or cannot be parsed is None; the
subject is None when ``subject`` is false (``[ingress] record_subject``).
Nothing here raises. Only the ``Message-ID`` and ``Subject`` fields (with
their continuation lines, in their order) are looked at, not the whole
section: the email package reads each field on its own, so the result is the
same, for a fraction of the cost (a real header section has dozens of
fields). When the first of each is plain (one line of ASCII, no encoded word;
a Message-ID of the ``<dot-atom@dot-atom>`` form) its text is its value and
the email package is not called at all (docs/benchmarks.md: 82 to 6 us per
message for smtp-source's header). A large header section is parsed in a
thread, so the event loop (other clients' replies) never waits for it.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import re
from email.parser import BytesHeaderParser

log = logging.getLogger("postline.ingress.headers")
LIMIT = 200
HEAD_LIMIT = 512 * 1024
INLINE = 16 * 1024
"""Header sections up to this many octets are parsed on the event loop."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_FIELDS = re.compile(
    rb"^(?:message-id|subject):[^\n]*(?:\n[ \t][^\n]*)*(?:\n|$)", re.IGNORECASE | re.MULTILINE
)
"""A Message-ID or Subject field and its continuation lines (names as the email package
matches them: no space before the colon)."""
_ATOM = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_PLAIN_ID = re.compile(rb"message-id:[ ]*(<" + _ATOM + rb"@" + _ATOM + rb">)[ ]*\r?\n?", re.I)
_PLAIN_SUBJECT = re.compile(rb"subject:[ ]*((?:(?!=\?)[\x20-\x7e])*)\r?\n?", re.I)
"""One-line fields whose decoded value is their text (no encoded word, no comment, no
folding, ASCII): ``parse_summary`` reads these without the email package."""


def header_section(body: bytes) -> bytes:
    """The header fields of ``body`` (without the empty line), at most ``HEAD_LIMIT`` octets."""
    if body.startswith(b"\r\n"):
        return b""  # no header fields at all
    end = body.find(b"\r\n\r\n", 0, HEAD_LIMIT)
    return body[: end + 2] if end >= 0 else body[:HEAD_LIMIT]


async def summary(head: bytes, subject: bool = True) -> tuple[str | None, str | None]:
    """``(Message-ID, Subject)`` of ``head``, decoded and cut (module docstring)."""
    if not head:
        return None, None
    if len(head) <= INLINE:
        return parse_summary(head, subject)
    return await asyncio.to_thread(parse_summary, head, subject)


def parse_summary(head: bytes, subject: bool = True) -> tuple[str | None, str | None]:
    found = [match.group() for match in _FIELDS.finditer(head)]
    if not found:
        return None, None
    plain = _plain_summary(found)
    if plain is not None:
        message_id, title = plain
        return one_line(message_id), one_line(title) if subject else None
    wanted = b"".join(found)
    try:
        fields = BytesHeaderParser(policy=email.policy.default).parsebytes(wanted)
        message_id = one_line(fields.get("Message-ID"))
        title = one_line(fields.get("Subject")) if subject else None
    except Exception as error:  # a header the email package cannot read: no summary
        log.info("header fields not decoded: %s", type(error).__name__)
        return None, None
    return message_id, title


def _plain_summary(fields: list[bytes]) -> tuple[str | None, str | None] | None:
    """The first Message-ID and Subject when both (if present) are plain; None otherwise."""
    values: dict[bytes, str] = {}
    for field in fields:
        name = field[:7].lower()
        if name in values:
            continue  # the email package reads the first one
        pattern = _PLAIN_SUBJECT if name == b"subject" else _PLAIN_ID
        match = pattern.fullmatch(field)
        if match is None:
            return None
        values[name] = match.group(1).decode("ascii")
    return values.get(b"message"), values.get(b"subject")


def one_line(value: object) -> str | None:
    """``value`` as one line of at most ``LIMIT`` characters; None when empty."""
    if value is None:
        return None
    text = str(value)
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate no undecodable byte stands for
        text = text.encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL.sub(" ", text).strip()
    return text[:LIMIT] or None
