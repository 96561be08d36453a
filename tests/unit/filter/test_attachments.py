"""The attachments filter: names, declared and detected types, zip contents, nested parts."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from postline.filter.api import Verdict
from postline.filter.attachments import AttachmentsFilter, detect_type, safe_name
from tests.unit.filter.helpers import message, plain, settings, with_attachment

PE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56


def attachments(**section: Any) -> AttachmentsFilter:
    return AttachmentsFilter(settings(attachments=section))


def zipped(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, b"content")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "content", "section", "reason"),
    [
        ("setup.exe", b"data", {}, "attachment 'setup.exe': extension .exe is blocked"),
        ("invoice.PDF.js", b"data", {}, "attachment 'invoice.PDF.js': extension .js is blocked"),
        ("trick.exe.", b"data", {}, "attachment 'trick.exe.': extension .exe is blocked"),
        ("invoice.pdf", PE, {},
         "attachment 'invoice.pdf': content detected as application/x-msdownload is blocked"),
        ("photos.zip", zipped("a.jpg", "dir/run.scr"), {},
         "attachment 'photos.zip': contains 'dir/run.scr' (extension .scr is blocked)"),
        ("notes.txt", b"text", {"allow_extensions": ["pdf", "jpg"]},
         "attachment 'notes.txt': extension .txt is not allowed"),
        ("report.docm", b"data", {"block_extensions": ["docm"]},
         "attachment 'report.docm': extension .docm is blocked"),
    ],
)  # fmt: skip
async def test_refused_attachments_are_rejected_with_a_reason_naming_them(
    filename: str, content: bytes, section: dict[str, Any], reason: str
) -> None:
    decision = await attachments(**section).apply(message(with_attachment(filename, content)))
    assert decision.verdict is Verdict.REJECT
    assert decision.reason == reason
    assert decision.reply is not None and decision.reply.code == 552
    assert decision.reply.text.endswith(reason.split(":")[0].removeprefix("attachment "))


async def test_a_blocked_declared_type_is_refused() -> None:
    mail = with_attachment("a.bin", b"data", "application", "x-msdownload")
    decision = await attachments(block_types=["application/x-*"]).apply(message(mail))
    assert decision.reason == "attachment 'a.bin': type application/x-msdownload is blocked"


async def test_an_attachment_inside_an_attached_message_inside_a_multipart_is_found() -> None:
    inner = with_attachment("tool.exe", b"data")
    outer = plain()
    outer.add_attachment(inner)
    decision = await attachments().apply(message(outer))
    assert decision.reason == "attachment 'tool.exe': extension .exe is blocked"


async def test_allowed_attachments_and_zip_without_refused_names_pass() -> None:
    mail = with_attachment("report.pdf", b"%PDF-1.7")
    mail.add_attachment(zipped("a.txt", "b.csv"), maintype="application", subtype="zip",
                        filename="data.zip")  # fmt: skip
    assert (await attachments().apply(message(mail))).verdict is Verdict.CONTINUE


async def test_an_unreadable_zip_or_broken_base64_does_not_raise() -> None:
    mail = with_attachment("broken.zip", b"PK\x03\x04 not really a zip")
    assert (await attachments().apply(message(mail))).verdict is Verdict.CONTINUE
    data = (
        b"From: a@company.test\r\nContent-Type: application/octet-stream; name=x.bin\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nTV!!qQ*AAD==@@\r\n"
    )
    decision = await attachments().apply(message(data))  # decodes to MZ...: detected
    assert decision.reason == (
        "attachment 'x.bin': content detected as application/x-msdownload is blocked"
    )


async def test_verdict_discard_discards_instead() -> None:
    decision = await attachments(verdict="discard").apply(message(with_attachment("a.exe", b"")))
    assert decision.verdict is Verdict.DISCARD and decision.reply is None


async def test_a_rfc2047_encoded_name_is_decoded_and_shown_safely() -> None:
    mail = with_attachment("x", b"data")
    part = next(iter(mail.iter_attachments()))
    part.replace_header(
        "Content-Disposition", 'attachment; filename="=?utf-8?q?r=C3=A9sum=C3=A9.exe?="'
    )
    decision = await attachments().apply(message(mail))
    assert decision.reason == "attachment 'r?sum?.exe': extension .exe is blocked"


def test_detection_and_safe_names() -> None:
    assert detect_type(PE) == "application/x-msdownload"
    assert detect_type(b"\x7fELF\x02") == "application/x-executable"
    assert detect_type(b"plain text") is None
    assert (
        safe_name("a\r\nb'c" + "x" * 200).startswith("a??b?c") and len(safe_name("x" * 200)) == 100
    )
