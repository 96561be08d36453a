"""8-bit to 7-bit: a message for a server that does not announce 8BITMIME (RFC 6152 3).

``to_7bit(message)`` returns the message with every MIME leaf part whose body
has 8-bit bytes re-encoded: ``text/*`` as quoted-printable, anything else as
base64, with its ``Content-Transfer-Encoding`` header replaced; multipart and
``message/*`` containers that said ``8bit``/``binary`` then say ``7bit``. A
message without MIME headers gets ``MIME-Version: 1.0`` and, when it has no
``Content-Type``, ``text/plain; charset=unknown-8bit`` (RFC 1428: the octets
are kept, their charset is not known). Everything else (headers, preamble,
epilogue, boundaries, 7-bit parts) is written back as it was, with CRLF line
ends; the result is valid MIME and pure ASCII.

Raises ``NotConvertible`` when that is impossible without changing what the
message says: 8-bit header fields (they need SMTPUTF8, RFC 6532), or a
``message/global`` part. The caller bounces such a message for that server
rather than send 8-bit data to it as it is. Pure function, no I/O (the caller
runs it in a thread for large messages).
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import io
from email.generator import BytesGenerator
from email.message import Message

_POLICY = email.policy.compat32.clone(linesep="\r\n")
_IDENTITY = ("7bit", "8bit", "binary", "")


class NotConvertible(ValueError):
    """The message cannot be made 7-bit without changing it; the text says why."""


def to_7bit(message: bytes) -> bytes:
    """``message`` as 7-bit MIME (module docstring); ``NotConvertible`` if it cannot be."""
    if message.isascii():
        return message
    root = email.message_from_bytes(message, policy=_POLICY)
    for part in root.walk():
        _check_headers(part)
        if part.get_content_type() == "message/global":
            raise NotConvertible("a message/global part needs SMTPUTF8")
        if part.is_multipart() or isinstance(part.get_payload(), list):
            _say_7bit(part)
            continue
        _encode_leaf(part)
    if root.get("MIME-Version") is None:
        if root.get("Content-Type") is None:
            root["Content-Type"] = "text/plain; charset=unknown-8bit"
        root["MIME-Version"] = "1.0"
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, maxheaderlen=0, policy=_POLICY).flatten(root)
    converted = out.getvalue()
    if not converted.isascii():
        raise NotConvertible("8-bit data outside the MIME parts")
    return converted


def _check_headers(part: Message) -> None:
    for name, value in part.items():
        if not (name.isascii() and str(value).isascii()):
            raise NotConvertible("8-bit header fields need SMTPUTF8")


def _say_7bit(part: Message) -> None:
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding in ("8bit", "binary"):
        part.replace_header("Content-Transfer-Encoding", "7bit")


def _encode_leaf(part: Message) -> None:
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes) or raw.isascii() or encoding not in _IDENTITY:
        return  # already 7-bit, or encoded (base64, quoted-printable) and left as it is
    if part.get_content_maintype() == "text":
        lines = raw.replace(b"\r\n", b"\n")
        text = binascii.b2a_qp(lines, istext=True).decode("ascii")
        name = "quoted-printable"
    else:
        text = base64.encodebytes(raw).decode("ascii")
        name = "base64"
    part.set_payload(text)
    if "Content-Transfer-Encoding" in part:
        part.replace_header("Content-Transfer-Encoding", name)
    else:
        part["Content-Transfer-Encoding"] = name
