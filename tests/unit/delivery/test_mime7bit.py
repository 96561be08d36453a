"""8-bit to 7-bit: valid MIME that decodes to the same content, or NotConvertible."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from postline.delivery.mime7bit import NotConvertible, to_7bit

MULTIPART = (
    b"From: a@x.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\npreamble\r\n'
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    + "Grüße =\r\n.\r\n".encode()
    + b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    + bytes(range(128, 256))
    + b"\r\n--XX\r\nContent-Type: text/plain\r\n\r\nascii stays\r\n--XX--\r\nepilogue\r\n"
)


def parts(data: bytes) -> list[EmailMessage]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return [p for p in message.walk() if isinstance(p, EmailMessage) and not p.is_multipart()]


def test_8bit_parts_are_encoded_and_keep_their_content() -> None:
    converted = to_7bit(MULTIPART)
    assert converted.isascii()
    text, binary, plain = parts(converted)
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert (
        text.get_content().replace("\r\n", "\n") == "Grüße =\n."
    )  # the last CRLF is the boundary's
    assert binary["Content-Transfer-Encoding"] == "base64"
    assert binary.get_content() == bytes(range(128, 256))
    assert plain.get_content().strip() == "ascii stays"
    assert b"preamble\r\n" in converted and b"epilogue" in converted
    assert b"\r\n" in converted and b"\n" not in converted.replace(b"\r\n", b"")


def test_a_message_without_mime_headers_gets_them() -> None:
    converted = to_7bit("Subject: hi\r\n\r\nGrüße\r\n".encode())
    assert b"MIME-Version: 1.0" in converted
    assert b"charset=unknown-8bit" in converted
    assert b"Content-Transfer-Encoding: quoted-printable" in converted


def test_an_ascii_message_is_returned_as_it_is() -> None:
    assert to_7bit(b"Subject: hi\r\n\r\nhello\r\n") == b"Subject: hi\r\n\r\nhello\r\n"


def test_8bit_header_fields_cannot_be_made_7bit() -> None:
    with pytest.raises(NotConvertible, match="header"):
        to_7bit("Subject: Grüße\r\n\r\nGrüße\r\n".encode())
