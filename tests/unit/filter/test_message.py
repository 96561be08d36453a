"""The header block editor: body bytes and untouched fields survive byte for byte."""

from __future__ import annotations

import pytest

from postline.filter.message import FilterMessage, split_message
from postline.models import Envelope


def message(data: bytes) -> FilterMessage:
    envelope = Envelope(message_id="4Q8ZT1K2M7XHBN3C", mail_from="a@x.test", rcpt_to=("b@y.test",))
    return FilterMessage(envelope, data)


def test_unchanged_message_serialises_to_the_same_bytes() -> None:
    data = b"Subject: hi\r\nX-Folded: one\r\n\ttwo\r\n\r\nbody line\r\n.dot\r\n\r\n\r\n"
    assert message(data).to_bytes() == data


def test_folded_field_is_one_field_and_its_value_is_unfolded() -> None:
    msg = message(b"Subject: a long\r\n  subject line\r\nTo: b@y.test\r\n\r\nbody\r\n")
    assert [f.name for f in msg.headers.fields] == ["Subject", "To"]
    assert msg.headers.get("subject") == "a long  subject line"
    assert msg.body == b"body\r\n"


def test_prepend_and_append_keep_body_and_existing_fields_exact() -> None:
    head = b"From: a@x.test\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n \tcontinued\r\n"
    body = b"line one\r\n\r\n  indented\r\n\x00\xff binary-ish\r\n"
    msg = message(head + b"\r\n" + body)
    msg.headers.prepend("Received", "from x\r\n\tby y")
    msg.headers.append("X-Added", "1")
    out = msg.to_bytes()
    assert out == b"Received: from x\r\n\tby y\r\n" + head + b"X-Added: 1\r\n\r\n" + body


def test_message_without_headers_gets_an_empty_line_before_its_body() -> None:
    data = b"just a body line\r\nanother\r\n"
    msg = message(data)
    assert len(msg.headers) == 0
    assert msg.body == data
    msg.headers.append("Date", "now")
    assert msg.to_bytes() == b"Date: now\r\n\r\n" + data


def test_message_starting_with_empty_line_keeps_it_as_the_separator() -> None:
    data = b"\r\nbody only\r\n"
    msg = message(data)
    assert len(msg.headers) == 0 and msg.body == b"body only\r\n"
    msg.headers.prepend("Received", "x")
    assert msg.to_bytes() == b"Received: x\r\n" + data


def test_headers_only_message_without_final_crlf_gets_one_before_an_appended_field() -> None:
    msg = message(b"Subject: no body")
    msg.headers.append("Date", "now")
    assert msg.to_bytes() == b"Subject: no body\r\nDate: now\r\n"


def test_leading_whitespace_line_is_body_not_a_continuation() -> None:
    fields, separator, body = split_message(b" folded?: no\r\n\r\nrest\r\n")
    assert fields == [] and separator == b""
    assert body == b" folded?: no\r\n\r\nrest\r\n"


def test_non_field_line_ends_the_header_block() -> None:
    data = b"Subject: x\r\nthis is not a header\r\n\r\nbody\r\n"
    fields, separator, body = split_message(data)
    assert [f.name for f in fields] == ["Subject"]
    assert separator == b"" and body == b"this is not a header\r\n\r\nbody\r\n"
    assert message(data).to_bytes() == data


def test_lookup_is_case_insensitive_and_remove_drops_every_copy() -> None:
    msg = message(b"X-Tag: 1\r\nx-tag: 2\r\nSubject: s\r\n\r\n")
    assert "X-TAG" in msg.headers
    assert msg.headers.get_all("x-Tag") == ["1", "2"]
    assert msg.headers.remove("X-Tag") == 2
    assert msg.to_bytes() == b"Subject: s\r\n\r\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Evil", "ok\r\nBcc: victim@example.org"),
        ("X-Evil", "bare\nnewline"),
        ("X-Evil", "bare\rcr"),
        ("X-Evil", "trailing\r\n"),
        ("X-Evil", "nul\x00"),
        ("Bad Name", "v"),
        ("Bad:Name", "v"),
    ],
)
def test_added_fields_cannot_inject_other_fields(name: str, value: str) -> None:
    msg = message(b"Subject: s\r\n\r\nbody\r\n")
    with pytest.raises(ValueError):
        msg.headers.append(name, value)
    assert msg.to_bytes() == b"Subject: s\r\n\r\nbody\r\n"
