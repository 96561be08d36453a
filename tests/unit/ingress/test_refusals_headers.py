"""The Message-ID and Subject a received event carries: decoded, one line, cut, optional."""

from __future__ import annotations

from postline.ingress.headers import HEAD_LIMIT, LIMIT, header_section, parse_summary, summary


def test_an_encoded_word_subject_and_the_message_id_are_decoded() -> None:
    head = b"Subject: =?utf-8?q?caf=C3=A9_au_lait?=\r\nMessage-ID: <abc.1@mail.example>\r\n"
    assert parse_summary(head) == ("<abc.1@mail.example>", "café au lait")


def test_a_raw_utf8_subject_is_decoded_and_bytes_that_are_not_utf8_become_replacements() -> None:
    assert parse_summary("Subject: ünïcode\r\n".encode()) == (None, "ünïcode")
    _, subject = parse_summary(b"Subject: bad \xff byte\r\n")
    assert subject is not None and "\udcff" not in subject and subject.startswith("bad ")
    subject.encode("utf-8")  # always encodable, so the event serialises


def test_a_folded_subject_with_control_characters_becomes_one_line() -> None:
    _, subject = parse_summary(b"Subject: first\r\n second\x07 \x1b[31mred\r\n")
    assert subject is not None
    assert "\r" not in subject and "\n" not in subject and "\x07" not in subject
    assert subject.startswith("first second")


def test_a_long_subject_is_cut_to_200_characters() -> None:
    _, subject = parse_summary(b"Subject: " + b"x" * 5000 + b"\r\n")
    assert subject == "x" * LIMIT


def test_record_subject_false_keeps_the_message_id_but_not_the_subject() -> None:
    head = b"Subject: secret plans\r\nMessage-ID: <m@x>\r\n"
    assert parse_summary(head, subject=False) == ("<m@x>", None)


def test_missing_or_empty_fields_are_none() -> None:
    assert parse_summary(b"From: a@b.example\r\nSubject:   \r\n") == (None, None)
    assert parse_summary(b"") == (None, None)


def test_the_header_section_ends_at_the_empty_line_and_is_bounded() -> None:
    body = b"Subject: s\r\nMessage-ID: <m@x>\r\n\r\nSubject: in the body\r\n"
    assert header_section(body) == b"Subject: s\r\nMessage-ID: <m@x>\r\n"
    assert header_section(b"\r\nSubject: body only\r\n\r\n") == b""
    assert len(header_section(b"X: " + b"y" * (2 * HEAD_LIMIT))) == HEAD_LIMIT


async def test_a_large_header_section_is_summarised_too() -> None:
    fields = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"z" * 60) for n in range(2000))
    head = fields + b"Subject: found\r\nMessage-ID: <big@x>\r\n"
    assert await summary(head) == ("<big@x>", "found")
