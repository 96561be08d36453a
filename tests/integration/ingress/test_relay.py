"""Relay policy at RCPT: classic relay-test forms never relay; syntax errors are 501/553."""

from __future__ import annotations

import pytest

from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress

pytestmark = pytest.mark.integration

# Forms from the classic open-relay test suites: the %-hack, bang paths, quoted
# local parts holding '@', source routes, address literals, trailing dots, case
# games and sender tricks. From an unauthorised client every one must be refused.
RELAY_TESTS = [
    "<victim@example.net>",
    "<victim%example.net@mx.test>",
    "<victim%example.net@[127.0.0.1]>",
    '<"victim@example.net">',
    '<"victim@example.net"@mx.test>',
    '<"victim%example.net"@mx.test>',
    "<example.net!victim@mx.test>",
    "<example.net!victim>",
    "<@mx.test:victim@example.net>",
    "<@mx.test,@relay.test:victim@example.net>",
    "<victim@example.net@mx.test>",
    "<victim@[192.0.2.1]>",
    "<victim@[IPv6:::1]>",
    "<victim@example.net.>",
    "<VICTIM@EXAMPLE.NET>",
    "<victim@localhost>",
    "<postmaster>",
    "victim@example.net",
]


@pytest.mark.parametrize(
    "sender",
    ["<>", "<someone@mx.test>", "<postmaster@localhost>", "<alice@example.org> AUTH=alice"],
)
async def test_classic_relay_test_forms_never_relay(
    start_ingress: StartIngress, sender: str
) -> None:
    ingress = await start_ingress(relay_networks=["127.0.0.1/32"], max_errors=100)
    client = await RawClient.connect(*ingress.plain, source="127.0.0.5")
    await client.ehlo("mx.test")
    for recipient in RELAY_TESTS:
        assert (await client.command(f"MAIL FROM:{sender}")).code == 250
        reply = await client.command(f"RCPT TO:{recipient}")
        assert reply.code in (501, 553, 554), (recipient, reply)
        assert (await client.command("DATA")).code == 503, recipient
        assert (await client.command("RSET")).code == 250
    await client.close()
    assert await ingress.submitted() == []


SENDER_ERRORS = [
    ("MAIL FROM:<user@example.org.>", "501 5.1.7"),
    ("MAIL FROM:<us..er@example.org>", "501 5.1.7"),
    ("MAIL FROM:<user@>", "501 5.1.7"),
    ("MAIL FROM:user", "501 5.1.7"),
    ("MAIL FROM:", "501 5.1.7"),
    ("MAIL TO:<user@example.org>", "501 5.5.4"),
    ("MAIL FROM:<user@example.org> FOO=BAR", "555 5.5.4"),
    ("MAIL FROM:<user@example.org> BODY=BINARYMIME", "501 5.5.4"),
    ("MAIL FROM:<user@example.org> SIZE=big", "501 5.5.4"),
    ("MAIL FROM:<jörg@example.org>", "553 5.6.7"),
]
RECIPIENT_ERRORS = [
    ("RCPT TO:<user@example.org.>", "501 5.1.3"),
    ("RCPT TO:<user@-bad.example>", "501 5.1.3"),
    ("RCPT TO:<>", "501 5.1.3"),
    ("RCPT TO:<user@[999.1.1.1]>", "501 5.1.3"),
    ("RCPT FROM:<user@example.org>", "501 5.5.4"),
    ("RCPT TO:<user@example.org> XFOO=1", "555 5.5.4"),
    ("RCPT TO:<jörg@example.org>", "553 5.6.7"),
]


async def test_sender_and_recipient_syntax_errors(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    for command, expected in SENDER_ERRORS:
        assert (await client.command(command)).text.startswith(expected), command
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    for command, expected in RECIPIENT_ERRORS:
        assert (await client.command(command)).text.startswith(expected), command
    await client.close()


async def test_trusted_client_relays_with_parsed_domains(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    for recipient in (
        '<"odd@local"@Example.NET>',
        "<@route.test:b@example.net>",
        "<c@[192.0.2.1]>",
    ):
        assert (await client.command(f"RCPT TO:{recipient}")).code == 250, recipient
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    [(_, envelope)] = await ingress.submitted()
    assert envelope.rcpt_to == ('"odd@local"@example.net', "b@example.net", "c@[192.0.2.1]")


async def test_smtputf8_addresses_are_accepted_when_declared(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<jörg@bücher.example> SMTPUTF8")).code == 250
    assert (await client.command("RCPT TO:<zoë@exämple.net>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send("Subject: ünïcode\r\n\r\nbody\r\n.\r\n".encode())
    assert (await client.reply()).code == 250
    await client.close()
    [(_, envelope)] = await ingress.submitted()
    assert envelope.smtputf8 and envelope.mail_from == "jörg@bücher.example"


async def test_ipv6_loopback_client_is_judged_by_ipv6_networks(start_ingress: StartIngress) -> None:
    trusted = await start_ingress(listen=["[::1]:0"], relay_networks=["::1/128"])
    client = await RawClient.connect(*trusted.plain, source="::1")
    await client.ehlo()
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await client.command("RCPT TO:<b@example.net>")).code == 250
    await client.close()
    untrusted = await start_ingress(listen=["[::1]:0"], relay_networks=["127.0.0.0/8"])
    client = await RawClient.connect(*untrusted.plain, source="::1")
    await client.ehlo()
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await client.command("RCPT TO:<b@example.net>")).code == 554
    await client.close()
