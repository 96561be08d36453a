"""DATA content: canonical CRLF only, RFC 5321 line limits, a bounded header section.

``ClientWire.read_data`` reads the content up to the end-of-data line, which is
only ``.`` CRLF at the start of a line (RFC 5321 4.1.1.4): ``\\n.\\n``,
``\\r.\\r`` and other look-alikes are content. ``check_content`` then decides,
first rule first:

* more than ``max_message_size`` octets -> ``552 5.3.4`` (the reader kept
  nothing past the limit);
* bare CR or bare LF anywhere -> ``550 5.6.0`` (the whole message is refused,
  so nothing another server could read as an early end of data is ever
  queued: the SMTP smuggling defence);
* NUL -> ``550 5.6.0``;
* a line longer than 1000 octets with its CRLF, after removing a
  transparency dot -> ``500 5.5.2``;
* a header section of more than ``max_header_lines`` lines or
  ``max_header_size`` octets -> ``552 5.3.4`` (Postfix's
  ``header_size_limit``; 0 turns a limit off).

Every check is a single pass over the bytes in C (``count``, ``find``, one
anchored regular expression), except the header scan, which stops after
``max_header_lines`` lines: CPU is linear in the message size and no check
keeps a copy per line. The body returned has the transparency dots removed and
CRLF line endings, exactly as received.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from postline.ingress import replies
from postline.ingress.wire import RawData
from postline.reply import SmtpReply

MAX_LINE = 1000
SLICE = 1 << 20
_LONG_LINE = re.compile(rb"^[^\r\n]{%d}" % (MAX_LINE - 1), re.MULTILINE)
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:")


@dataclass(frozen=True)
class Limits:
    """What one message may be: octets, and the header section's lines and octets (0: any)."""

    max_size: int
    max_header_lines: int = 0
    max_header_size: int = 0


@dataclass(frozen=True)
class Content:
    """The message (``body``) or why it was refused (``error``)."""

    body: bytes | None
    error: SmtpReply | None


async def check_content(raw: RawData, limits: Limits) -> Content:
    """The body of ``raw`` or the reply refusing it (module docstring).

    The line checks run over slices of about ``SLICE`` octets cut at line
    ends, yielding to the event loop between slices, so a large message
    never holds up other sessions for long.
    """
    if raw.wire is None:
        return Content(None, replies.TOO_BIG)
    body = unstuff(raw.wire)
    start = 0
    while start < len(body):
        cut = body.find(b"\r\n", start + SLICE)
        end = len(body) if cut < 0 else cut + 2
        error = line_error(body, start, end)
        if error is not None:
            return Content(None, error)
        start = end
        if start < len(body):
            await asyncio.sleep(0)
    error = header_error(body, limits)
    return Content(None, error) if error is not None else Content(body, None)


def unstuff(wire: bytes) -> bytes:
    """Remove the transparency dot at the start of every line (RFC 5321 4.5.2)."""
    if wire.startswith(b"."):
        wire = wire[1:]
    return wire.replace(b"\r\n.", b"\r\n") if b"\r\n." in wire else wire


def line_error(body: bytes, start: int = 0, end: int | None = None) -> SmtpReply | None:
    """Bare line ends, NUL or an over-long line in ``body[start:end]`` (unstuffed).

    ``start`` must be 0 or just after a CRLF, ``end`` just after one or the end.
    """
    end = len(body) if end is None else end
    crlf = body.count(b"\r\n", start, end)
    if body.count(b"\r", start, end) != crlf or body.count(b"\n", start, end) != crlf:
        return replies.BARE_LINE_ENDING
    if body.find(b"\x00", start, end) >= 0:
        return replies.NUL_IN_CONTENT
    if _LONG_LINE.search(body, start, end):
        return replies.LINE_TOO_LONG
    return None


def header_error(body: bytes, limits: Limits) -> SmtpReply | None:
    """``552 5.3.4`` when the header section passes a limit, else None.

    The header section is the leading run of field lines (``name:``) and
    their continuations (leading space or tab), ended by an empty line or by
    the first line that is neither (which starts the body, as in the filter).
    """
    max_lines, max_size = limits.max_header_lines, limits.max_header_size
    if not max_lines and not max_size:
        return None
    pos = lines = 0
    while pos < len(body):
        end = body.find(b"\r\n", pos)
        if end == pos or end < 0:
            return None
        if body[pos] not in b" \t" and not _FIELD_NAME.match(body, pos, end):
            return None
        lines += 1
        pos = end + 2
        if (max_lines and lines > max_lines) or (max_size and pos > max_size):
            return replies.HEADER_TOO_BIG
    return None
