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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from postline.models import Envelope

CRLF = b"\r\n"
_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")
_FOLD = re.compile(r"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n")


@dataclass
class HeaderField:
    """One header field: its name as written and its raw bytes (``Name: value\\r\\n``)."""

    name: str
    raw: bytes

    @property
    def value(self) -> str:
        """The unfolded value, leading and trailing whitespace removed."""
        _, _, value = self.raw.partition(b":")
        unfolded = re.sub(rb"\r\n(?=[ \t])", b"", value)
        return unfolded.decode("utf-8", errors="replace").strip()


class HeaderBlock:
    """The ordered header fields of one message; names compare case-insensitively."""

    def __init__(self, fields: list[HeaderField]) -> None:
        self.fields = fields

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(_same(f.name, name) for f in self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def get(self, name: str) -> str | None:
        """Value of the first field called ``name``, or ``None``."""
        return next((f.value for f in self.fields if _same(f.name, name)), None)

    def get_all(self, name: str) -> list[str]:
        return [f.value for f in self.fields if _same(f.name, name)]

    def prepend(self, name: str, value: str) -> None:
        """Add a field above all others (where trace fields such as ``Received`` go)."""
        self.fields.insert(0, _field(name, value))

    def append(self, name: str, value: str) -> None:
        """Add a field below all others."""
        if self.fields and not self.fields[-1].raw.endswith(CRLF):
            last = self.fields[-1]
            self.fields[-1] = HeaderField(last.name, last.raw + CRLF)
        self.fields.append(_field(name, value))

    def remove(self, name: str) -> int:
        """Remove every field called ``name``; returns how many were removed."""
        kept = [f for f in self.fields if not _same(f.name, name)]
        removed = len(self.fields) - len(kept)
        self.fields = kept
        return removed

    def to_bytes(self) -> bytes:
        return b"".join(f.raw for f in self.fields)


class FilterMessage:
    """The envelope (read-only), the header block (editable) and the body (read-only)."""

    def __init__(self, envelope: Envelope, data: bytes) -> None:
        fields, separator, body = split_message(data)
        self.envelope = envelope
        self.headers = HeaderBlock(fields)
        self._had_headers = bool(fields)
        self._separator = separator
        self._body = body

    @property
    def body(self) -> bytes:
        """Everything after the empty line that ends the headers, exactly as received."""
        return self._body

    def to_bytes(self) -> bytes:
        """The message with its current headers; body and untouched fields unchanged."""
        separator = self._separator
        if self.headers.fields and not self._had_headers and not separator and self._body:
            separator = CRLF  # headers added to a header-less message need the empty line
        return self.headers.to_bytes() + separator + self._body


def split_message(data: bytes) -> tuple[list[HeaderField], bytes, bytes]:
    """Split ``data`` into header fields, the separator line and the body (module docstring)."""
    fields: list[HeaderField] = []
    pos, size = 0, len(data)
    while pos < size:
        end = data.find(CRLF, pos)
        line_end = size if end < 0 else end + 2
        content = data[pos:] if end < 0 else data[pos:end]
        if not content and end >= 0:
            return fields, CRLF, data[line_end:]
        if content[:1] in (b" ", b"\t") and fields:
            last = fields[-1]
            last.raw += data[pos:line_end]
        elif match := _FIELD.match(content):
            fields.append(HeaderField(match.group(1).decode("ascii"), data[pos:line_end]))
        else:
            return fields, b"", data[pos:]
        pos = line_end
    return fields, b"", b""


def _field(name: str, value: str) -> HeaderField:
    """A new field; refuses names outside RFC 5322 and line breaks that are not folds."""
    if not _NAME.match(name):
        raise ValueError(f"invalid header field name {name!r}")
    if _FOLD.search(value):
        raise ValueError(f"header {name}: line breaks must be CRLF followed by a space or tab")
    if "\x00" in value:
        raise ValueError(f"header {name}: value must not contain NUL")
    return HeaderField(name, f"{name}: {value}".encode() + CRLF)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()
