"""The MIME walk: every part in order, bounded depth/parts/headers, lenient decoding."""

from __future__ import annotations

import base64
import time

import pytest

from postline.filter.message import FilterMessage
from postline.filter.mime import MimeLimits, MimeTooComplex, decoded, text_of, walk
from tests.unit.filter.helpers import alternative, envelope, message, plain, with_attachment


def nested(depth: int) -> bytes:
    """``depth`` multiparts, each the only part of the one above, around one text leaf."""
    head = b"From: a@company.test\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(depth)
    )
    leaf = b"--b%d\r\nContent-Type: text/plain\r\n\r\nleaf\r\n--b%d--\r\n" % (depth, depth)
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + leaf + closing


def test_walk_lists_every_entity_in_document_order_with_types_names_and_depth() -> None:
    mail = alternative()
    mail.add_attachment(b"%PDF-1.7 ...", maintype="application", subtype="pdf", filename="a.pdf")
    parts = walk(message(mail), MimeLimits())
    assert [(p.depth, p.content_type, p.filename) for p in parts] == [
        (0, "multipart/mixed", None),
        (1, "multipart/alternative", None),
        (2, "text/plain", None),
        (2, "text/html", None),
        (1, "application/pdf", "a.pdf"),
    ]
    assert decoded(parts[-1], 100) == b"%PDF-1.7 ..."
    assert text_of(parts[2], 100) == "Hello\r\n"


def test_walk_looks_inside_attached_messages_and_marks_what_is_inside_them() -> None:
    inner = with_attachment("tool.exe", b"MZ\x90\x00")
    outer = plain()
    outer.add_attachment(inner)
    parts = walk(message(outer), MimeLimits())
    exe = next(p for p in parts if p.filename == "tool.exe")
    assert exe.depth == 3 and "rfc822" in exe.inside
    assert decoded(exe, 10) == b"MZ\x90\x00"


def test_parts_of_a_signed_multipart_are_marked_signed() -> None:
    data = (
        b"From: a@company.test\r\nContent-Type: multipart/signed; boundary=s;"
        b' protocol="application/pgp-signature"\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\n'
        b"signed text\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--s--\r\n"
    )
    parts = walk(message(data), MimeLimits())
    assert [("signed" in p.inside) for p in parts] == [False, True, True]


def test_a_thousand_nested_multiparts_are_refused_at_the_depth_limit_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(MimeTooComplex, match="MIME nesting deeper than 30"):
        walk(message(nested(1000)), MimeLimits(max_depth=30))
    assert time.perf_counter() - started < 0.5


def test_nesting_within_the_limit_is_walked_without_recursion() -> None:
    parts = walk(message(nested(150)), MimeLimits(max_depth=200))
    assert len(parts) == 152 and parts[-1].content_type == "text/plain"


def test_more_parts_than_the_limit_are_refused() -> None:
    body = b"".join(b"--b\r\n\r\npart %d\r\n" % i for i in range(50)) + b"--b--\r\n"
    data = b"From: a@company.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + body
    with pytest.raises(MimeTooComplex, match="more than 20 MIME parts"):
        walk(message(data), MimeLimits(max_parts=20))


def test_a_20_mb_header_line_in_a_part_is_refused_without_parsing_it() -> None:
    huge = b"X-Junk: " + b"a" * (20 * 1024 * 1024) + b"\r\n"
    data = (
        b"From: a@company.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\n" + huge + b"\r\nbody\r\n--b--\r\n"
    )
    started = time.perf_counter()
    with pytest.raises(MimeTooComplex, match="MIME part header of more than 65536 bytes"):
        walk(message(data), MimeLimits())
    assert time.perf_counter() - started < 1.0


def test_an_oversized_content_type_parameter_list_is_refused() -> None:
    params = b"".join(b'; p%d="a;b"' % i for i in range(2000))
    data = b"From: a@company.test\r\nContent-Type: text/plain" + params + b"\r\n\r\nx\r\n"
    with pytest.raises(MimeTooComplex, match="content-type field"):
        walk(FilterMessage(envelope(), data), MimeLimits())


@pytest.mark.parametrize(
    ("encoding", "payload", "expected"),
    [
        ("base64", b"SGVsbG8g!!d29y*bGQ=\r\n===", b"Hello world"),
        ("base64", b"====", b""),
        ("base64", b"SGVsbG8", b"Hello"),
        ("quoted-printable", b"caf=C3=A9 =ZZ broken=\r\nline", "café =ZZ brokenline".encode()),
    ],
    ids=["junk-in-base64", "only-padding", "truncated-base64", "broken-qp"],
)
def test_broken_transfer_encodings_decode_leniently_never_raise(
    encoding: str, payload: bytes, expected: bytes
) -> None:
    data = (
        b"From: a@company.test\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + payload
    )
    [part] = walk(message(data), MimeLimits())
    assert decoded(part, 1000) == expected


def test_decoding_stops_at_the_limit() -> None:
    payload = base64.encodebytes(b"x" * 100_000).replace(b"\n", b"\r\n")
    data = (
        b"From: a@company.test\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=x.bin\r\n\r\n" + payload
    )
    [part] = walk(message(data), MimeLimits())
    assert decoded(part, 1000) == b"x" * 1000
    assert part.is_attachment and part.filename == "x.bin"


def test_unknown_charsets_read_as_utf8_with_replacements() -> None:
    data = b"Content-Type: text/plain; charset=x-nonsense\r\n\r\nna\xefve caf\xc3\xa9\r\n"
    [part] = walk(message(data), MimeLimits())
    assert text_of(part, 100) == "na\ufffdve café\r\n"


def test_a_multipart_without_its_closing_delimiter_still_yields_its_parts() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b\r\n\r\none\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>"
    )
    parts = walk(message(data), MimeLimits())
    assert [text_of(p, 100) for p in parts[1:]] == ["one", "<p>two</p>"]
