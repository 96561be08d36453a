"""A bounded, iterative walk over a message's MIME tree, and lenient decoding of parts.

``walk(message, limits)`` lists every entity of the message in document order
(depth first): the message itself, each multipart and each leaf, and the
message inside a ``message/rfc822`` part. A ``Part`` knows its type, file name,
disposition, transfer encoding, charset, depth, whether it sits inside a
signed, encrypted or attached message (``inside``), and where its body is in
the message body (``start``/``end``); nothing is copied but part headers.

Bounds, so hostile MIME cannot hang a worker or grow memory: nesting deeper
than ``max_depth``, more than ``max_parts`` entities, a part header over
``max_part_header`` bytes or a Content-* field over ``MAX_PARAM_FIELD`` bytes
raise ``MimeTooComplex`` (the chain rejects the message, ``554 5.6.0``). Each
multipart level is split with one linear scan for its boundary, so the walk
costs at most ``max_depth`` passes over the body; no recursion (a thousand
nested multiparts never reach Python's recursion limit). ``parts_of`` caches
the walk on the message and runs it off the event loop for large bodies.

``decoded`` undoes base64 and quoted-printable leniently (broken input gives
garbage bytes, never an exception) and at most ``limit`` bytes of output;
``text_of`` also applies the charset (unknown ones as UTF-8, errors replaced).
"""

from __future__ import annotations

import binascii
import codecs
import email.parser
import email.policy
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING

from postline.filter.offload import off_loop

if TYPE_CHECKING:
    from postline.filter.message import FilterMessage

CRLF = b"\r\n"
MAX_PARAM_FIELD = 8 * 1024
_B64_KEEP = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_DROP = bytes(b for b in range(256) if b not in _B64_KEEP)
_CONTENT = ("content-type", "content-disposition", "content-transfer-encoding")
_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


class MimeTooComplex(ValueError):
    """The MIME structure exceeds ``MimeLimits``; the text says which (no content)."""


@dataclass(frozen=True)
class MimeLimits:
    max_depth: int = 30
    max_parts: int = 2000
    max_part_header: int = 64 * 1024


@dataclass(frozen=True)
class Part:
    """One MIME entity; its body is ``buffer[start:end]`` (still transfer-encoded)."""

    content_type: str
    filename: str | None
    disposition: str | None
    encoding: str
    charset: str | None
    boundary: bytes | None
    depth: int
    inside: frozenset[str]
    buffer: bytes
    start: int
    end: int

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart"

    @property
    def is_attachment(self) -> bool:
        return self.disposition == "attachment" or (
            self.filename is not None and not self.is_multipart
        )

    @property
    def size(self) -> int:
        return self.end - self.start


async def parts_of(message: FilterMessage, limits: MimeLimits) -> list[Part]:
    """``walk`` once per message body (cached in ``message.memo``), off the loop when large."""
    cached: list[Part] | None = message.memo.get("mime")
    if cached is None:
        cached = await off_loop(lambda: walk(message, limits), len(message.body))
        message.memo["mime"] = cached
    return cached


def walk(message: FilterMessage, limits: MimeLimits) -> list[Part]:
    """Every entity of ``message``, document order (module docstring)."""
    fields = [f.raw for f in message.headers.fields if f.name.lower() in _CONTENT]
    body = message.body
    top = _describe(_header_of(b"".join(fields)), body, 0, len(body), 0, frozenset(), "text/plain")
    parts: list[Part] = []
    stack = [top]
    while stack:
        part = stack.pop()
        parts.append(part)
        if len(parts) > limits.max_parts:
            raise MimeTooComplex(f"more than {limits.max_parts} MIME parts")
        children = _children(part, limits)
        if children and part.depth + 1 > limits.max_depth:
            raise MimeTooComplex(f"MIME nesting deeper than {limits.max_depth}")
        stack.extend(reversed(children))
    return parts


def _children(part: Part, limits: MimeLimits) -> list[Part]:
    inside = part.inside
    if part.content_type == "multipart/signed":
        inside = inside | {"signed"}
    elif part.content_type == "multipart/encrypted":
        inside = inside | {"encrypted"}
    if part.is_multipart and part.boundary:
        default = "message/rfc822" if part.content_type == "multipart/digest" else "text/plain"
        ranges = _split(part.buffer, part.start, part.end, part.boundary)
        if len(ranges) > limits.max_parts:
            raise MimeTooComplex(f"more than {limits.max_parts} MIME parts")
        return [
            _entity(part.buffer, s, e, part.depth + 1, inside, default, limits) for s, e in ranges
        ]
    if part.content_type in ("message/rfc822", "message/global") and part.encoding in (
        "7bit", "8bit", "binary",
    ):  # fmt: skip
        inner = _entity(part.buffer, part.start, part.end, part.depth + 1, inside | {"rfc822"},
                        "text/plain", limits)  # fmt: skip
        return [inner]
    return []


def _entity(
    buffer: bytes, start: int, end: int, depth: int, inside: frozenset[str], default: str,
    limits: MimeLimits,
) -> Part:  # fmt: skip
    """The entity in ``buffer[start:end]``: its header (bounded), then its body."""
    if buffer.startswith(CRLF, start, end):
        return _describe(Message(), buffer, start + 2, end, depth, inside, default)
    window = min(end, start + limits.max_part_header + 4)
    blank = buffer.find(b"\r\n\r\n", start, window)
    if blank < 0:
        if end - start > limits.max_part_header:
            raise MimeTooComplex(f"MIME part header of more than {limits.max_part_header} bytes")
        header, body_start = buffer[start:end], end
    else:
        header, body_start = buffer[start : blank + 2], blank + 4
    return _describe(_header_of(header), buffer, body_start, end, depth, inside, default)


def _header_of(raw: bytes) -> Message:
    """The Content-* fields of a part header as a ``Message`` (for RFC 2045/2231 params)."""
    message = _PARSER.parsebytes(raw)
    for name in _CONTENT:
        for value in message.get_all(name, []):
            if len(str(value)) > MAX_PARAM_FIELD:
                raise MimeTooComplex(f"a {name} field of more than {MAX_PARAM_FIELD} bytes")
    return message


def _describe(
    header: Message, buffer: bytes, start: int, end: int, depth: int, inside: frozenset[str],
    default: str,
) -> Part:  # fmt: skip
    header.set_default_type(default)
    content_type = header.get_content_type()
    boundary = header.get_boundary() if content_type.startswith("multipart/") else None
    disposition = header.get_content_disposition()
    encoding = str(header.get("content-transfer-encoding", "7bit")).strip().lower() or "7bit"
    charset = header.get_content_charset()
    try:
        filename = header.get_filename()
    except (LookupError, ValueError):
        filename = None
    leaf_inside = inside | {"encrypted"} if content_type.endswith("pkcs7-mime") else inside
    return Part(
        content_type=content_type,
        filename=str(filename) if filename else None,
        disposition=disposition,
        encoding=encoding,
        charset=charset,
        boundary=boundary.encode("ascii", "replace") if boundary and len(boundary) <= 200 else None,
        depth=depth,
        inside=leaf_inside,
        buffer=buffer,
        start=start,
        end=max(start, end),
    )


def _split(buffer: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """Body ranges of a multipart in ``buffer[start:end]``: one scan for its delimiters."""
    delimiter = b"--" + boundary
    ranges: list[tuple[int, int]] = []
    opened: int | None = None  # where the current part's content starts
    pos = start
    if buffer.startswith(delimiter, start, end):
        found = start
    else:
        found = _next(buffer, delimiter, pos, end)
    while found >= 0:
        after = found + len(delimiter)
        closing = buffer.startswith(b"--", after, end)
        line_end = buffer.find(CRLF, after, min(end, after + 1000))
        rest = buffer[after : line_end if line_end >= 0 else min(end, after + 1000)]
        if closing or not rest.strip(b" \t"):
            if opened is not None:
                ranges.append((opened, found - 2 if found - 2 >= opened else opened))
            if closing:
                return ranges
            opened = line_end + 2 if line_end >= 0 else end
        found = _next(buffer, delimiter, after, end)
    if opened is not None:
        ranges.append((opened, end))
    return ranges


def _next(buffer: bytes, delimiter: bytes, pos: int, end: int) -> int:
    """Start of the next ``CRLF--boundary`` after ``pos`` (at the delimiter), or -1."""
    found = buffer.find(CRLF + delimiter, pos, end)
    return found + 2 if found >= 0 else -1


def decoded(part: Part, limit: int) -> bytes:
    """The part's body without its transfer encoding, at most ``limit`` bytes (lenient)."""
    if part.encoding == "base64":
        raw = part.buffer[part.start : min(part.end, part.start + limit * 4 // 3 + 4096)]
        clean = raw.translate(None, _B64_DROP)  # junk and misplaced padding go
        rest = len(clean) % 4
        clean = clean[:-1] if rest == 1 else clean + b"=" * ((4 - rest) % 4)
        try:
            return binascii.a2b_base64(clean)[:limit]
        except binascii.Error:
            return b""
    raw = part.buffer[part.start : min(part.end, part.start + limit * 3)]
    if part.encoding == "quoted-printable":
        return binascii.a2b_qp(raw)[:limit]
    return raw[:limit]


def text_of(part: Part, limit: int) -> str:
    """The decoded part as text: its charset, else UTF-8; undecodable bytes replaced."""
    charset = part.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return decoded(part, limit).decode(charset, errors="replace")
