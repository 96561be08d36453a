"""The Message-ID and Subject a received event carries: decoded, one line, cut, optional."""

from __future__ import annotations

import email.policy
import random
from email.parser import BytesHeaderParser

from postline.ingress.headers import (
    HEAD_LIMIT,
    LIMIT,
    header_section,
    one_line,
    parse_summary,
    summary,
)


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


def test_only_the_two_fields_are_read_among_many_folded_and_oddly_cased_ones() -> None:
    head = (
        b"Received: from a\r\n by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        b"SUBJECT: folded\r\n\tsubject\r\n"
        b"X-Subject: not this one\r\n"
        b"DKIM-Signature: v=1; a=rsa-sha256;\r\n b=abc\r\n"
        b"message-id:\r\n <folded@x>\r\n"
        b"Subject: a second subject is ignored\r\n"
    )
    assert parse_summary(head) == ("<folded@x>", "folded subject")


def _with_the_email_package(head: bytes) -> tuple[str | None, str | None]:
    """What ``parse_summary`` returns by contract: the email package on the whole section."""
    try:
        fields = BytesHeaderParser(policy=email.policy.default).parsebytes(head)
        return one_line(fields.get("Message-ID")), one_line(fields.get("Subject"))
    except Exception:  # parse_summary's contract: nothing when the package cannot read it
        return None, None


def test_plain_fields_read_without_the_email_package_decode_exactly_as_it_does() -> None:
    chance = random.Random(20261202)
    plain = ["a", "Z", "0", " ", "  ", "(", ")", '"', "\\", "<", ">", "@", ".", ",", ";", ":"]
    plain += ["~", "..", "-", "[", "]", "=", "?", "!", "#", "'"]
    odd = [*plain, "=?", "?=", "é", "\t", "=?utf-8?q?x?="]
    for number in range(3000):
        pieces = plain if number % 2 else odd
        subject = "".join(chance.choice(pieces) for _ in range(chance.randint(0, 8)))
        atoms = ["a", "Z", "0", "-", "~", "!", "#", "'", "."] if number % 4 == 1 else pieces
        left = "".join(chance.choice(atoms) for _ in range(chance.randint(0, 4)))
        right = chance.choice(["x.example", "x", "[1.2.3.4]", "a..b", ""])
        message_id = chance.choice([f"<{left}@{right}>", f"{left}@{right}", f" <{left}@{right}> "])
        lines = [f"Message-ID: {message_id}", f"Subject: {subject}", "From: a@b.example"]
        chance.shuffle(lines)
        head = "".join(f"{line}\r\n" for line in lines).encode()
        assert parse_summary(head) == _with_the_email_package(head), head
