"""Changing a message: header set, body replacement rules, the seal, MIME entity write-back."""

from __future__ import annotations

import pytest

from postline.filter.message import FilterMessage, MessageSealed
from postline.filter.mime_edit import apply_entity, entity_of
from tests.unit.filter.helpers import envelope

DATA = b"From: a@company.test\r\nSubject: one\r\nX-A: 1\r\nSubject: two\r\n\r\nbody\r\n"


def test_set_replaces_the_first_field_in_place_and_drops_the_others() -> None:
    message = FilterMessage(envelope(), DATA)
    message.headers.set("subject", "new")
    assert message.to_bytes() == (b"From: a@company.test\r\nsubject: new\r\nX-A: 1\r\n\r\nbody\r\n")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"bare\nlf\r\n", "CRLF only"),
        (b"bare\rcr\r\n", "CRLF only"),
        (b"x" * 999 + b"\r\n", "998 octets"),
    ],
)
def test_a_new_body_must_keep_crlf_and_short_lines(body: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        FilterMessage(envelope(), DATA).replace_body(body)


def test_a_headers_only_message_gets_the_empty_line_before_a_new_body() -> None:
    message = FilterMessage(envelope(), b"Subject: x")
    message.replace_body(b"now a body\r\n")
    assert message.to_bytes() == b"Subject: x\r\n\r\nnow a body\r\n"
    assert message.body_changed and message.size == len(message.to_bytes())


def test_replacing_the_body_forgets_what_was_derived_from_the_old_one() -> None:
    message = FilterMessage(envelope(), DATA)
    message.memo["mime"] = ["stale"]
    message.replace_body(b"other\r\n")
    assert message.memo == {}


def test_a_sealed_message_keeps_body_and_fields_but_takes_new_fields() -> None:
    message = FilterMessage(envelope(), DATA)
    message.seal("dkim")
    for change in (
        lambda: message.replace_body(b"x\r\n"),
        lambda: message.headers.remove("X-A"),
        lambda: message.headers.set("Subject", "x"),
    ):
        with pytest.raises(MessageSealed, match="signed by dkim"):
            change()
    message.headers.prepend("Received", "by relay.test; Wed, 04 Mar 2026 05:06:07 +0000")
    assert message.to_bytes().endswith(DATA)


def test_writing_back_the_mime_entity_keeps_other_fields_where_and_as_they_were() -> None:
    data = (
        b"From: a@company.test\r\nContent-Type: text/plain;\r\n charset=us-ascii\r\n"
        b"Subject:   spaced   \r\n\r\nhello\r\n"
    )
    message = FilterMessage(envelope(), data)
    entity = entity_of(message)
    entity.set_payload("changed\r\n")
    apply_entity(message, entity)
    out = message.to_bytes()
    assert out.startswith(b"From: a@company.test\r\nContent-Type: text/plain;\r\n charset=us-ascii")
    assert b"\r\nSubject:   spaced   \r\n" in out and b"MIME-Version: 1.0\r\n" in out
    assert out.endswith(b"\r\n\r\nchanged\r\n")
