"""Built-in filter ``attachments``: refuse attachments by name, declared type and detected type.

Every leaf MIME part except the body text is checked, at any depth: inside
nested multiparts and inside attached messages (``message/rfc822``), in
document order; the first refused one decides. A part is refused when

* its file name's extension (``Content-Disposition`` filename or
  ``Content-Type`` name, RFC 2231/2047 decoded; trailing dots and spaces
  ignored, as Windows does) is in ``block_extensions``, or
  ``allow_extensions`` is set and does not list it;
* its declared type is in ``block_types`` (``type/subtype``, or a prefix and ``*``:
  ``application/*``, ``application/x-*``);
* its content, detected from the first bytes whatever the name says
  (``detect_type``: PE and ELF executables, Mach-O, zip, PDF, OLE2, rar,
  7z, gzip, cab, scripts), is in ``block_detected``;
* it is a zip (by name or content), ``look_inside_zip`` is on, and a name
  inside it is refused by the extension rules (the archive's directory is
  read, nothing is extracted; an unreadable zip is not looked into).

The decision is ``[filter.attachments] verdict`` (reject: the reply names
the attachment; discard) with a reason naming the attachment and why, e.g.
``attachment 'invoice.pdf.exe': extension .exe is blocked``. Names are
reduced to printable ASCII and 100 characters before they reach a reason
or reply. Decoding is lenient (broken base64 is checked for what it
decodes to) and bounded, and runs off the event loop for large messages.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import TYPE_CHECKING

from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.filter.mime import MimeLimits, Part, decoded, parts_of
from postline.filter.offload import off_loop
from postline.filter.rules import decoded_header, is_body_text
from postline.reply import SmtpReply

if TYPE_CHECKING:
    from postline.filter.settings import FilterSettings

SNIFF = 4096
MAX_ZIP_NAMES = 10_000
MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"%PDF-", "application/pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x1f\x8b", "application/gzip"),
    (b"MSCF", "application/vnd.ms-cab-compressed"),
    (b"#!", "text/x-script"),
)
_UNSAFE = re.compile(r"[^\x20-\x7e]|['\\]")


def detect_type(head: bytes) -> str | None:
    """The content type the first bytes show, if one of ``MAGIC``."""
    return next((kind for magic, kind in MAGIC if head.startswith(magic)), None)


def safe_name(name: str) -> str:
    """``name`` reduced to printable ASCII (others as ``?``) and 100 characters."""
    shown = _UNSAFE.sub("?", name)
    return shown if len(shown) <= 100 else shown[:97] + "..."


def extension(name: str) -> str:
    base = name.rstrip(". ").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return base.rpartition(".")[2].lower() if "." in base else ""


class AttachmentsFilter:
    """See the module docstring."""

    name = "attachments"

    def __init__(self, settings: FilterSettings) -> None:
        section = settings.attachments
        self.blocked = frozenset(section.block_extensions)
        self.allowed = frozenset(section.allow_extensions)
        self.block_types = tuple(t.lower() for t in section.block_types)
        self.block_detected = frozenset(t.lower() for t in section.block_detected)
        self.look_inside_zip = section.look_inside_zip
        self.discard = section.verdict == "discard"
        self.reply = section.reply
        self.limits = MimeLimits(settings.max_mime_depth, settings.max_mime_parts)

    async def apply(self, message: FilterMessage) -> Decision:
        parts = await parts_of(message, self.limits)
        checked = [p for p in parts if not p.is_multipart and not is_body_text(p)]
        checked = [p for p in checked if p.content_type not in ("message/rfc822", "message/global")]
        size = sum(p.size for p in checked)
        found = await off_loop(lambda: self._first_refused(checked), size)
        if found is None:
            return Decision.proceed()
        name, why = found
        reason = f"attachment {name}: {why}"
        if self.discard:
            return Decision.discard(reason)
        reply = SmtpReply(
            code=self.reply.code, enhanced=self.reply.enhanced, text=f"{self.reply.text}: {name}"
        )
        return Decision.reject(reason, reply)

    def _first_refused(self, parts: list[Part]) -> tuple[str, str] | None:
        for part in parts:
            why = self._refusal(part)
            if why is not None:
                shown = (
                    f"'{safe_name(decoded_header(part.filename))}'"
                    if part.filename
                    else (f"of type {part.content_type}")
                )
                return shown, why
        return None

    def _refusal(self, part: Part) -> str | None:
        """Why ``part`` is refused, or ``None``."""
        name = decoded_header(part.filename) if part.filename else ""
        why = self._extension_refusal(name) if name else None
        if why is not None:
            return why
        declared = part.content_type
        for blocked in self.block_types:
            if declared == blocked or (blocked.endswith("*") and declared.startswith(blocked[:-1])):
                return f"type {declared} is blocked"
        detected = detect_type(decoded(part, SNIFF))
        if detected in self.block_detected:
            return f"content detected as {detected} is blocked"
        if self.look_inside_zip and (detected == "application/zip" or extension(name) == "zip"):
            return self._zip_refusal(part)
        return None

    def _extension_refusal(self, name: str) -> str | None:
        ext = extension(name)
        if self.allowed and ext not in self.allowed:
            return f"extension .{ext} is not allowed" if ext else "a name without extension"
        if ext in self.blocked:
            return f"extension .{ext} is blocked"
        return None

    def _zip_refusal(self, part: Part) -> str | None:
        try:
            with zipfile.ZipFile(io.BytesIO(decoded(part, part.size))) as archive:
                names = archive.namelist()[:MAX_ZIP_NAMES]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
            return None
        for inner in names:
            why = self._extension_refusal(inner)
            if why is not None and not inner.endswith("/"):
                return f"contains '{safe_name(inner)}' ({why})"
        return None
