"""Reading DATA content: canonical CRLF only, RFC 5321 line limits, bounded memory.

``read_content`` consumes the client's message up to and including the
end-of-data line, which is only ``.`` CRLF at the start of a line (RFC 5321
4.1.1.4): ``\\n.\\n``, ``\\r.\\r`` and other look-alikes are content. It always
reads to the end, so the session stays in step with the client, and decides:

* bare CR or bare LF anywhere in the content -> ``550 5.6.0`` (the whole
  message is refused, so nothing that another server could read as an early
  end of data is ever queued: the SMTP smuggling defence);
* NUL -> ``550 5.6.0``;
* a line longer than 1000 octets with its CRLF (after removing a transparency
  dot) -> ``500 5.5.2``;
* more than ``max_size`` octets -> ``552 5.3.4``.

After the first error nothing more is kept, so memory stays within
``max_size`` plus one line whatever the client sends. The body returned has
transparency dots removed and CRLF line endings, exactly as received.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from postline.ingress import replies
from postline.reply import SmtpReply

MAX_LINE = 1000


@dataclass(frozen=True)
class Content:
    """The message (``body``) or why it was refused (``error``); ``size`` read so far."""

    body: bytes | None
    error: SmtpReply | None
    size: int


def check_line(line: bytes) -> SmtpReply | None:
    """Problems of one unstuffed, CRLF-terminated content line."""
    text = line[:-2]
    if b"\r" in text or b"\n" in text:
        return replies.BARE_LINE_ENDING
    if b"\x00" in text:
        return replies.NUL_IN_CONTENT
    if len(line) > MAX_LINE:
        return replies.LINE_TOO_LONG
    return None


async def read_content(reader: asyncio.StreamReader, max_size: int) -> Content:
    """Read one message after ``354`` (see the module docstring)."""
    lines: list[bytes] = []
    size = 0
    error: SmtpReply | None = None
    at_line_start = True
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError as overrun:
            await reader.readexactly(overrun.consumed)
            error = error or replies.LINE_TOO_LONG
            lines.clear()
            at_line_start = False
            continue
        if at_line_start and line == b".\r\n":
            break
        at_line_start = True
        if error is not None:
            continue
        if line.startswith(b"."):
            line = line[1:]
        size += len(line)
        error = check_line(line) or (replies.TOO_BIG if size > max_size else None)
        if error is not None:
            lines.clear()
            continue
        lines.append(line)
    if error is not None:
        return Content(None, error, size)
    return Content(b"".join(lines), None, size)
