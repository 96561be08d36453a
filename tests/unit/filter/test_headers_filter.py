"""Built-in ``headers`` filter: Message-ID, Date and Received, body untouched."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import SMTP
from typing import Any

import pytest

from postline.filter.api import Verdict
from postline.filter.headers import HeadersFilter, received_value
from postline.filter.message import FilterMessage
from postline.filter.settings import FilterSettings
from postline.models import Envelope

ARRIVAL = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def envelope(**changes: Any) -> Envelope:
    values: dict[str, Any] = {
        "message_id": "4Q8ZT1K2M7XHBN3C",
        "mail_from": "mary@company.test",
        "rcpt_to": ("john@partner.test",),
        "received_at": ARRIVAL,
        "client_ip": "192.0.2.7",
        "helo": "laptop.company.test",
    }
    values.update(changes)
    return Envelope(**values)


async def run_filter(data: bytes, env: Envelope | None = None) -> FilterMessage:
    message = FilterMessage(env or envelope(), data)
    decision = await HeadersFilter(FilterSettings(hostname="relay.test")).apply(message)
    assert decision.verdict is Verdict.CONTINUE
    return message


async def test_missing_message_id_and_date_are_added_from_the_envelope() -> None:
    message = await run_filter(b"Subject: hi\r\n\r\nbody\r\n")
    assert message.headers.get("Message-ID") == "<4Q8ZT1K2M7XHBN3C@relay.test>"
    assert message.headers.get("Date") == "Wed, 04 Mar 2026 05:06:07 +0000"


async def test_existing_message_id_and_date_are_kept_as_they_are() -> None:
    head = b"message-id: <orig@client>\r\nDATE: Mon, 1 Jan 2024 00:00:00 -0500\r\n"
    message = await run_filter(head + b"\r\nbody\r\n")
    assert message.headers.get_all("Message-ID") == ["<orig@client>"]
    assert message.headers.get_all("Date") == ["Mon, 1 Jan 2024 00:00:00 -0500"]
    assert message.to_bytes().endswith(head + b"\r\nbody\r\n")


async def test_received_is_the_first_field_and_body_bytes_are_unchanged() -> None:
    body = b"first\r\n\r\n.leading dot\r\n  spaces  \r\n\xe9\xff\r\n"
    data = b"From: mary@company.test\r\nSubject: folded\r\n\tsubject\r\n\r\n" + body
    out = (await run_filter(data)).to_bytes()
    assert out.startswith(b"Received: from laptop.company.test ([192.0.2.7])\r\n")
    assert out.endswith(b"\r\n\r\n" + body)
    assert b"From: mary@company.test\r\nSubject: folded\r\n\tsubject\r\n" in out


async def test_every_line_of_the_result_ends_with_crlf() -> None:
    out = (await run_filter(b"Subject: x\r\n\r\na\r\nb\r\n")).to_bytes()
    assert out.endswith(b"\r\n")
    assert out.count(b"\n") == out.count(b"\r\n")
    assert out.count(b"\r") == out.count(b"\r\n")


async def test_message_without_any_headers_becomes_a_valid_message() -> None:
    out = (await run_filter(b"no headers at all\r\n")).to_bytes()
    parsed = message_from_bytes(out, policy=SMTP)
    assert parsed["Message-ID"] == "<4Q8ZT1K2M7XHBN3C@relay.test>"
    assert parsed.get_payload() == "no headers at all\r\n"
    assert out.endswith(b"\r\n\r\nno headers at all\r\n")


def test_received_names_helo_ip_host_protocol_id_recipient_and_date() -> None:
    value = received_value(envelope(), "relay.test")
    assert value == (
        "from laptop.company.test ([192.0.2.7])\r\n"
        "\tby relay.test (Postline) with ESMTP id 4Q8ZT1K2M7XHBN3C\r\n"
        "\tfor <john@partner.test>; Wed, 04 Mar 2026 05:06:07 +0000"
    )


@pytest.mark.parametrize(
    ("tls", "auth_user", "protocol"),
    [
        (False, None, "ESMTP"),
        (True, None, "ESMTPS"),
        (False, "mary", "ESMTPA"),
        (True, "mary", "ESMTPSA"),
    ],
)
def test_received_protocol_reflects_tls_and_authentication(
    tls: bool, auth_user: str | None, protocol: str
) -> None:
    value = received_value(envelope(tls=tls, auth_user=auth_user), "relay.test")
    assert f" with {protocol} id " in value
    assert "mary" not in value  # the user name is never written


def test_received_omits_for_clause_with_several_recipients() -> None:
    value = received_value(envelope(rcpt_to=("a@x.test", "b@y.test")), "relay.test")
    assert " for " not in value
    assert value.endswith("id 4Q8ZT1K2M7XHBN3C; Wed, 04 Mar 2026 05:06:07 +0000")


def test_received_writes_ipv6_clients_as_address_literals() -> None:
    value = received_value(envelope(client_ip="2001:db8:0::1"), "relay.test")
    assert value.startswith("from laptop.company.test ([IPv6:2001:db8::1])\r\n")


@pytest.mark.parametrize(
    ("helo", "shown"),
    [
        (None, "unknown"),
        ("evil (comment) host", "evil??comment??host"),
        ("x\r\nBcc: y", "x??Bcc:?y"),
        ("[192.0.2.7]", "[192.0.2.7]"),
    ],
)
def test_client_helo_cannot_add_fields_or_comments(helo: str | None, shown: str) -> None:
    value = received_value(envelope(helo=helo), "relay.test")
    assert value.startswith(f"from {shown} ([192.0.2.7])\r\n\tby ")


@pytest.mark.parametrize("recipient", ["a>b@x.test", "a b@x.test", "é@x.test", "x\u2028y@x.test"])
def test_unsafe_single_recipient_is_left_out(recipient: str) -> None:
    value = received_value(envelope(rcpt_to=(recipient,)), "relay.test")
    assert " for " not in value


def test_utf8_recipient_is_written_for_smtputf8_messages() -> None:
    value = received_value(envelope(rcpt_to=("josé@x.test",), smtputf8=True), "relay.test")
    assert "for <josé@x.test>;" in value


def test_missing_client_ip_leaves_out_the_address_comment() -> None:
    value = received_value(envelope(client_ip=None, helo=None), "relay.test")
    assert value.startswith("from unknown\r\n\tby relay.test")
