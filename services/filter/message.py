"""A message as filters see it: the envelope, an editable header block, the body bytes.

The RFC 5322 bytes are split once into header fields (each kept as its exact
raw bytes, folding included), the separator (the empty line, or nothing) and
the body. Filters add, prepend or remove fields; ``to_bytes`` joins the parts
again, so the body and every untouched field come out byte for byte as they
came in. Nothing here goes through the ``email`` package, which re-folds
headers and may re-encode bodies.

Lines end with CRLF (ingress guarantees it). The header block ends at the
first empty line; a line that is neither a field (``name:``) nor a
continuation (leading space or tab) also ends it and starts the body, as in
a message without headers at all. Fields added here end with CRLF and are
folded by the caller (``\\r\\n`` followed by a space or tab).

Cost: splitting is linear in the header section (each field is found with one
regex search and sliced once; continuation lines are never appended one by
one), and so are ``to_bytes``, ``HeaderField.value`` and every lookup. With
``HeaderLimits`` it is also bounded: it scans at most ``max_size`` bytes and
builds at most ``max_lines`` fields, and raises ``HeaderSectionTooLarge`` for
a header section (the fields, without the empty line that ends them) of more
bytes or more lines than that. To tell whether a line that starts near the
limit is a field or the body, it reads up to 998 bytes (RFC 5322's longest
line) past ``max_size``; a field name still running there counts as too
large. The body is never scanned here.

Changing the message: ``HeaderBlock`` edits fields; ``FilterMessage.replace_body``
swaps the body for one that keeps CRLF line endings and RFC 5322's 998-octet
lines (``ValueError`` otherwise); ``postline.filter.mime_edit`` is the parsed-MIME
way to produce one. After ``seal`` (the ``dkim`` filter, once it signed) the body
and the existing fields are frozen: ``replace_body``, ``remove`` and ``set``
raise ``MessageSealed`` (adding fields stays allowed). ``memo`` caches what
filters derive from the body (the MIME parts); ``replace_body`` clears it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from postline.models import Envelope

CRLF = b"\r\n"
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_NAME_SO_FAR = re.compile(rb"[\x21-\x39\x3b-\x7e]+[ \t]*")
_FIELD_END = re.compile(rb"\r\n(?![ \t])")
_UNFOLD = re.compile(rb"\r\n(?=[ \t])")
_NAME_SLACK = 998  # how far past max_size a line is read to tell a field from the body
_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")
_FOLD = re.compile(r"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n")
_BARE_EOL = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_LONG_LINE = re.compile(rb"[^\r\n]{999}")


@dataclass
class HeaderField:
    """One header field: its name as written and its raw bytes (``Name: value\\r\\n``)."""

    name: str
    raw: bytes

    @property
    def value(self) -> str:
        """The unfolded value, leading and trailing whitespace removed."""
        _, _, value = self.raw.partition(b":")
        unfolded = _UNFOLD.sub(b"", value)
        return unfolded.decode("utf-8", errors="replace").strip()


@dataclass(frozen=True)
class HeaderLimits:
    """The largest header section ``split_message`` parses: bytes and lines (CRLF-ended)."""

    max_size: int
    max_lines: int


DEFAULT_LIMITS = HeaderLimits(max_size=1024 * 1024, max_lines=20_000)
"""``[filter] max_header_size`` and ``max_header_lines`` unless configured."""


class HeaderSectionTooLarge(ValueError):
    """The header section exceeds ``HeaderLimits``; the text says which limit (no content)."""


class MessageSealed(RuntimeError):
    """A filter tried to change what a DKIM signature already covers."""


class HeaderBlock:
    """The ordered header fields of one message; names compare case-insensitively."""

    def __init__(self, fields: list[HeaderField]) -> None:
        self.fields = fields
        self.sealed_by: str | None = None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and next(self._named(name), None) is not None

    def __len__(self) -> int:
        return len(self.fields)

    def get(self, name: str) -> str | None:
        """Value of the first field called ``name``, or ``None``."""
        return next((f.value for f in self._named(name)), None)

    def get_all(self, name: str) -> list[str]:
        return [f.value for f in self._named(name)]

    def prepend(self, name: str, value: str) -> None:
        """Add a field above all others (where trace fields such as ``Received`` go)."""
        self.fields.insert(0, _field(name, value))

    def append(self, name: str, value: str) -> None:
        """Add a field below all others."""
        if self.fields and not self.fields[-1].raw.endswith(CRLF):
            last = self.fields[-1]
            self.fields[-1] = HeaderField(last.name, last.raw + CRLF)
        self.fields.append(_field(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace the first field called ``name`` in place (others of that name go);
        append it if there is none."""
        self.check_open(name)
        new: HeaderField | None = _field(name, value)
        key = name.lower()
        kept: list[HeaderField] = []
        for field in self.fields:
            if field.name.lower() != key:
                kept.append(field)
            elif new is not None:
                kept.append(new)
                new = None
        self.fields = kept
        if new is not None:
            self.append(name, value)

    def remove(self, name: str) -> int:
        """Remove every field called ``name``; returns how many were removed."""
        self.check_open(name)
        key = name.lower()
        kept = [f for f in self.fields if f.name.lower() != key]
        removed = len(self.fields) - len(kept)
        self.fields = kept
        return removed

    def to_bytes(self) -> bytes:
        return b"".join(f.raw for f in self.fields)

    def check_open(self, name: str) -> None:
        if self.sealed_by is not None:
            raise MessageSealed(f"cannot change {name}: the message was signed by {self.sealed_by}")

    def _named(self, name: str) -> Iterator[HeaderField]:
        key = name.lower()
        return (f for f in self.fields if f.name.lower() == key)


class FilterMessage:
    """The envelope (read-only), the header block (editable) and the body.

    ``limits`` bounds the parsing (``HeaderSectionTooLarge``); without it only
    the size of ``data`` does.
    """

    def __init__(self, envelope: Envelope, data: bytes, limits: HeaderLimits | None = None) -> None:
        fields, separator, body = split_message(data, limits)
        self.envelope = envelope
        self.headers = HeaderBlock(fields)
        self.limits = limits
        self.memo: dict[str, Any] = {}
        self.body_changed = False
        self._had_headers = bool(fields)
        self._separator = separator
        self._body = body

    @property
    def body(self) -> bytes:
        """Everything after the empty line that ends the headers (as received unless replaced)."""
        return self._body

    @property
    def size(self) -> int:
        """Length of ``to_bytes()``, without building it."""
        return sum(len(f.raw) for f in self.headers.fields) + len(self._separator) + len(self._body)

    def replace_body(self, body: bytes) -> None:
        """Use ``body`` from now on: CRLF line endings, lines of at most 998 octets."""
        self.headers.check_open("the body")
        if _BARE_EOL.search(body):
            raise ValueError("a new body must end its lines with CRLF only")
        if _LONG_LINE.search(body):
            raise ValueError("a new body must not have lines over 998 octets")
        if not self._separator and self.headers.fields:
            last = self.headers.fields[-1]
            if not last.raw.endswith(CRLF):
                self.headers.fields[-1] = HeaderField(last.name, last.raw + CRLF)
            self._separator = CRLF
        self._body = body
        self.body_changed = True
        self.memo.clear()

    def seal(self, by: str) -> None:
        """Freeze the body and the existing fields (``by`` signed them)."""
        self.headers.sealed_by = by

    def to_bytes(self) -> bytes:
        """The message with its current headers; body and untouched fields unchanged."""
        separator = self._separator
        if self.headers.fields and not self._had_headers and not separator and self._body:
            separator = CRLF  # headers added to a header-less message need the empty line
        return b"".join([*(f.raw for f in self.headers.fields), separator, self._body])


def split_message(
    data: bytes, limits: HeaderLimits | None = None
) -> tuple[list[HeaderField], bytes, bytes]:
    """Split ``data`` into header fields, the separator line and the body (module docstring)."""
    fields: list[HeaderField] = []
    size = len(data)
    max_size = size if limits is None else limits.max_size
    max_lines = size + 1 if limits is None else limits.max_lines
    window = min(size, max_size + 1)  # one byte more: a field may end exactly at max_size
    name_window = min(size, window + _NAME_SLACK)
    pos = lines = 0
    while pos < size:
        if data.startswith(CRLF, pos):
            return fields, CRLF, data[pos + 2 :]
        match = _FIELD.match(data, pos, name_window)
        if match is None:
            if name_window < size and _NAME_SO_FAR.fullmatch(data, pos, name_window):
                raise HeaderSectionTooLarge(f"header section of more than {max_size} bytes")
            return fields, b"", data[pos:]
        end = _field_end(data, match.end(), window, max_size)
        lines += data.count(CRLF, pos, end) + (not data.endswith(CRLF, pos, end))
        if lines > max_lines:
            raise HeaderSectionTooLarge(f"header section of more than {max_lines} lines")
        fields.append(HeaderField(match.group(1).decode("ascii"), data[pos:end]))
        pos = end
    return fields, b"", b""


def _field_end(data: bytes, start: int, window: int, max_size: int) -> int:
    """Where the field whose value starts at ``start`` ends (after its last line's CRLF)."""
    found = _FIELD_END.search(data, start, window)
    end = window if found is None else found.end()
    if end > max_size:
        raise HeaderSectionTooLarge(f"header section of more than {max_size} bytes")
    return end


def _field(name: str, value: str) -> HeaderField:
    """A new field; refuses names outside RFC 5322 and line breaks that are not folds."""
    if not _NAME.match(name):
        raise ValueError(f"invalid header field name {name!r}")
    if _FOLD.search(value):
        raise ValueError(f"header {name}: line breaks must be CRLF followed by a space or tab")
    if "\x00" in value:
        raise ValueError(f"header {name}: value must not contain NUL")
    return HeaderField(name, f"{name}: {value}".encode() + CRLF)
