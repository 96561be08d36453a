"""The parsed-MIME path for body edits: the message's MIME entity through the ``email`` package.

``entity_of(message)`` parses the top-level MIME entity (the message's
Content-* fields and its body, never From, Subject or any other field) into an
``email.message.EmailMessage``. A filter changes it (``append_text`` adds text
to one text part, keeping its charset and a 7-bit-safe transfer encoding) and
``apply_entity(message, entity)`` writes it back: the Content-* fields are
replaced where they stood, the body is the generator's output (CRLF, the
original boundaries, preambles and untouched parts as they were), and every
other header field keeps its original bytes. ``MIME-Version: 1.0`` is added
if the message had none.

Only call ``entity_of`` on a message ``postline.filter.mime.walk`` accepted:
the walk bounds depth and size, which the ``email`` package does not.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
from email.message import EmailMessage

from postline.filter.message import CRLF, FilterMessage, HeaderField, split_message

POLICY = email.policy.SMTP.clone(refold_source="none")
"""CRLF, 8-bit parts kept as they are, source header lines never re-folded."""
_CONTENT_PREFIX = "content-"


def entity_of(message: FilterMessage) -> EmailMessage:
    """The message's top-level MIME entity, parsed (module docstring)."""
    fields = [f.raw for f in message.headers.fields if _is_content(f.name)]
    data = b"".join(fields) + CRLF + message.body
    parsed: EmailMessage = email.message_from_bytes(data, policy=POLICY)
    return parsed


def apply_entity(message: FilterMessage, entity: EmailMessage) -> None:
    """Write ``entity`` back into ``message`` (module docstring)."""
    fields, _, body = split_message(entity.as_bytes(policy=POLICY))
    new_fields = [HeaderField(f.name, f.raw) for f in fields if _is_content(f.name)]
    headers = message.headers
    headers.check_open("the MIME structure")
    at = next((i for i, f in enumerate(headers.fields) if _is_content(f.name)), None)
    kept = [f for f in headers.fields if not _is_content(f.name)]
    if at is not None:  # where the first Content-* field stood, among the fields kept
        at = sum(1 for f in headers.fields[:at] if not _is_content(f.name))
    else:
        at = len(kept)
    if kept and at == len(kept) and not kept[-1].raw.endswith(CRLF):
        kept[-1] = HeaderField(kept[-1].name, kept[-1].raw + CRLF)
    headers.fields = kept[:at] + new_fields + kept[at:]
    if "MIME-Version" not in headers:
        headers.append("MIME-Version", "1.0")
    message.replace_body(body)


def append_text(part: EmailMessage, addition: str, *, html: bool) -> bool:
    """Add ``addition`` to a text part: appended (plain) or before ``</body>`` (HTML).

    The part keeps its charset when the result fits it (else UTF-8) and gets a
    7-bit-safe transfer encoding: 7bit for short ASCII lines, else its own
    base64 or quoted-printable. False (part untouched) when its bytes do not
    decode in its charset: better no disclaimer than a garbled message.
    """
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return False
    charset = part.get_content_charset() or "us-ascii"
    try:
        text = raw.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return False
    lines = "\n".join(text.splitlines())
    new = _insert_html(lines, addition) if html else _append_plain(lines, addition)
    try:
        encoded = new.encode(charset)
    except UnicodeEncodeError:
        charset, encoded = "utf-8", new.encode("utf-8")
    original = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    encoding, payload = _encode(encoded, original)
    del part["Content-Transfer-Encoding"]
    part["Content-Transfer-Encoding"] = encoding
    if part.get_content_charset() != charset:
        part.set_param("charset", charset)
    part.set_payload(payload)
    return True


def _append_plain(text: str, addition: str) -> str:
    body = text.rstrip("\n")
    return f"{body}\n\n{addition.strip()}\n"


def _insert_html(text: str, addition: str) -> str:
    lowered = text.lower()
    at = lowered.rfind("</body>")
    if at < 0:
        at = lowered.rfind("</html>")
    if at < 0:
        return f"{text.rstrip()}\n{addition.strip()}\n"
    return f"{text[:at]}{addition.strip()}\n{text[at:]}"


def _encode(data: bytes, original: str) -> tuple[str, str]:
    """(transfer encoding, payload text) for ``data``: 7-bit clean in every case."""
    if original == "base64":
        return "base64", base64.encodebytes(data).decode("ascii")
    lines = data.split(b"\n")
    if original != "quoted-printable" and data.isascii() and max(map(len, lines)) <= 998:
        return "7bit", data.decode("ascii")
    return "quoted-printable", binascii.b2a_qp(data, istext=True).decode("ascii")


def _is_content(name: str) -> bool:
    return name.lower().startswith(_CONTENT_PREFIX)
