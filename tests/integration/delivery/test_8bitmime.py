"""8-bit mail to a server without 8BITMIME is converted to 7-bit MIME, never sent as is."""

from __future__ import annotations

import email
import email.policy

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import MxFor, StartDelivery
from tests.support.remote import Remote

pytestmark = pytest.mark.integration
BODY = (
    b"From: a@example.org\r\nTo: b@x.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    + b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    + "Grüße aus Köln, = 100 % sicher\r\n.\r\n".encode()
)


@pytest.fixture(autouse=True)
def x_test(mx_for: MxFor) -> None:
    mx_for("x.test")


async def test_an_8bit_body_is_made_quoted_printable_for_a_server_without_8bitmime(
    start_delivery: StartDelivery, smtp_port: int
) -> None:
    async with Remote("127.0.0.1", smtp_port, "plain") as remote:
        harness = await start_delivery()
        await harness.send(["b@x.test"], body=BODY)
        await harness.wait_for(EventKind.DELIVERED, "b@x.test")
    [sent] = remote.messages
    assert sent.isascii()
    assert not any("BODY=8BITMIME" in command for command in remote.commands)
    message = email.message_from_bytes(sent, policy=email.policy.default)
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content().replace("\r\n", "\n") == "Grüße aus Köln, = 100 % sicher\n.\n"
    lines = [line for e in harness.of(EventKind.CONVERSATION) for line in e.transcript or []]
    assert "8-bit body converted to 7-bit MIME: the server does not offer 8BITMIME" in lines


async def test_an_8bit_body_goes_as_it_is_with_body_8bitmime_where_offered(
    start_delivery: StartDelivery, smtp_port: int
) -> None:
    async with Remote("127.0.0.1", smtp_port, "well-behaved") as remote:
        harness = await start_delivery()
        await harness.send(["b@x.test"], body=BODY)
        await harness.wait_for(EventKind.DELIVERED, "b@x.test")
    assert remote.messages == [BODY]
    assert any(c.endswith("BODY=8BITMIME") for c in remote.commands if c.startswith("MAIL"))


async def test_8bit_header_fields_for_a_server_without_smtputf8_bounce(
    start_delivery: StartDelivery, smtp_port: int
) -> None:
    body = "Subject: Grüße\r\n\r\nhi\r\n".encode()
    async with Remote("127.0.0.1", smtp_port, "plain") as remote:
        harness = await start_delivery()
        await harness.send(["b@x.test"], body=body, smtputf8=True)
        [bounced] = await harness.wait_for(EventKind.BOUNCED, "b@x.test")
    assert bounced.reply is not None and bounced.reply.enhanced == "5.6.7"
    assert remote.messages == []
