"""The disclaimer: added once, to the body parts only, keeping MIME and charsets valid."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, MIMEPart
from typing import Any

import pytest

from postline.filter.api import Verdict
from postline.filter.disclaimer import MARK, DisclaimerFilter
from postline.filter.message import FilterMessage, MessageSealed
from postline.filter.mime import MimeLimits, walk
from tests.unit.filter.helpers import alternative, crlf_bytes, message, plain, settings

TEXT = "-- \nCompany Ltd, registered in Nowhere. Confidential."
HTML = '<p class="disclaimer">Company Ltd. Confidential.</p>'


def disclaimer(**section: Any) -> DisclaimerFilter:
    return DisclaimerFilter(settings(disclaimer={"text": TEXT, "html": HTML, **section}))


def parsed(filtered: FilterMessage) -> EmailMessage:
    result = email.message_from_bytes(filtered.to_bytes(), policy=email.policy.default)
    assert isinstance(result, EmailMessage)
    return result


def content(part: MIMEPart | None) -> str:
    """The decoded text of ``part``, line ends as ``\n``."""
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def assert_valid_mime(mail: EmailMessage) -> None:
    for part in mail.walk():
        assert not part.defects, part.defects
        if not part.is_multipart():
            part.get_content()  # decodes with its charset and transfer encoding


async def test_text_and_html_alternatives_each_get_it_once_and_the_result_parses() -> None:
    filtered = message(alternative())
    decision = await disclaimer().apply(filtered)
    assert decision.verdict is Verdict.CONTINUE and decision.reason == "added to 2 parts"
    mail = parsed(filtered)
    assert_valid_mime(mail)
    plain_part = mail.get_body(("plain",))
    html_part = mail.get_body(("html",))
    assert plain_part is not None and html_part is not None
    assert plain_part.get_content().count("Confidential.") == 1
    assert html_part.get_content().count(HTML) == 1
    assert html_part.get_content().index(HTML) < html_part.get_content().index("</body>")
    assert mail[MARK] == "added"


async def test_running_again_on_its_own_output_adds_nothing() -> None:
    first = message(alternative())
    await disclaimer().apply(first)
    again = FilterMessage(first.envelope, first.to_bytes())
    decision = await disclaimer().apply(again)
    assert decision.reason == "already added"
    assert again.to_bytes() == first.to_bytes()


async def test_only_the_body_changes_not_the_attachments_and_other_fields_keep_their_bytes() -> (
    None
):
    mail = plain("Hello\n")
    mail.add_attachment("an attached text file\n", filename="notes.txt")
    original = crlf_bytes(mail)
    filtered = message(mail)
    await disclaimer().apply(filtered)
    out = parsed(filtered)
    assert_valid_mime(out)
    notes = next(p for p in out.iter_attachments())
    assert content(notes) == "an attached text file\n"
    body = out.get_body(("plain",))
    assert body is not None and "Confidential." in body.get_content()
    head = original.split(b"Content-Type")[0]
    assert filtered.to_bytes().startswith(head)  # From, To, Subject: byte for byte


async def test_a_latin1_body_keeps_its_charset_when_the_text_fits_and_moves_to_utf8_when_not() -> (
    None
):
    latin = (
        b"From: mary@company.test\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nCaf\xe9 ouvert\r\n"
    )
    kept = message(latin)
    await disclaimer().apply(kept)
    part = parsed(kept)
    assert part.get_content_charset() == "iso-8859-1"
    assert part.get_content().startswith("Café ouvert")
    moved = message(latin)
    await DisclaimerFilter(settings(disclaimer={"text": "Ünïcødé ✓"})).apply(moved)
    part = parsed(moved)
    assert part.get_content_charset() == "utf-8" and part["Content-Transfer-Encoding"] == (
        "quoted-printable"
    )
    assert content(part).endswith("Ünïcødé ✓\n")


async def test_a_base64_body_stays_base64_and_7bit_clean() -> None:
    mail = plain("Grüße aus Köln\n")  # email encodes non-ASCII text: utf-8, 8bit or base64
    mail.replace_header("Content-Transfer-Encoding", "base64")
    mail.set_content("Grüße aus Köln\n", cte="base64")
    filtered = message(mail)
    await disclaimer().apply(filtered)
    out = parsed(filtered)
    assert out["Content-Transfer-Encoding"] == "base64"
    assert out.get_content().startswith("Grüße aus Köln") and "Confidential." in out.get_content()
    assert filtered.body.isascii()


@pytest.mark.parametrize(
    "data",
    [
        b"From: a@company.test\r\nContent-Type: multipart/signed; boundary=s;"
        b' protocol="application/pkcs7-signature"\r\n\r\n--s\r\nContent-Type: text/plain\r\n\r\n'
        b"signed\r\n--s\r\nContent-Type: application/pkcs7-signature\r\n\r\nMIIB\r\n--s--\r\n",
        b"From: a@company.test\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data"
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIBAA==\r\n",
        b"From: a@company.test\r\nContent-Type: multipart/encrypted; boundary=e;"
        b' protocol="application/pgp-encrypted"\r\n\r\n--e\r\nContent-Type: application/pgp-'
        b"encrypted\r\n\r\nVersion: 1\r\n--e\r\nContent-Type: application/octet-stream\r\n\r\n"
        b"-----BEGIN PGP MESSAGE-----\r\n--e--\r\n",
        b"From: a@company.test\r\nContent-Type: text/plain\r\n\r\n-----BEGIN PGP SIGNED MESSAGE"
        b"-----\r\nHash: SHA256\r\n\r\nhello\r\n-----BEGIN PGP SIGNATURE-----\r\n",
    ],
    ids=["smime-signed", "smime-encrypted", "pgp-encrypted", "inline-pgp"],
)
async def test_signed_or_encrypted_content_is_left_untouched(data: bytes) -> None:
    filtered = message(data)
    decision = await disclaimer().apply(filtered)
    assert decision.reason == "no part to add it to"
    assert filtered.to_bytes() == data


async def test_per_domain_texts_and_only_domains() -> None:
    section = {"domains": {"company.test": {"text": "Company text"}}, "only_domains": True}
    chosen = DisclaimerFilter(settings(disclaimer=section))
    filtered = message(plain(), mail_from="mary@sales.company.test")
    await chosen.apply(filtered)
    assert content(parsed(filtered).get_body(("plain",))).endswith("Company text\n")
    other = message(plain(), mail_from="bob@elsewhere.test")
    assert (await chosen.apply(other)).reason == "none for this sender"


async def test_the_result_stays_within_the_mime_limits_and_line_rules() -> None:
    filtered = message(alternative())
    await disclaimer().apply(filtered)
    walk(filtered, MimeLimits())
    assert all(len(line) <= 998 for line in filtered.to_bytes().split(b"\r\n"))
    assert b"\n" not in filtered.to_bytes().replace(b"\r\n", b"")


async def test_a_sealed_message_refuses_a_body_change() -> None:
    filtered = message(plain())
    filtered.seal("dkim")
    with pytest.raises(MessageSealed, match="signed by dkim"):
        await disclaimer().apply(filtered)
