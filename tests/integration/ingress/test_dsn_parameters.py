"""Ingress speaks RFC 3461: DSN is announced, RET/ENVID and NOTIFY/ORCPT are accepted and kept."""

from __future__ import annotations

import pytest

from postline.models import RecipientParams
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.support.broker import wait_until

pytestmark = pytest.mark.integration
MESSAGE = "From: alice@example.org\r\nSubject: dsn\r\n\r\nHello.\r\n.\r\n"


async def test_dsn_is_announced_and_its_parameters_are_accepted(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    assert "DSN" in (await client.ehlo()).lines
    mail = await client.command("MAIL FROM:<alice@example.org> RET=HDRS ENVID=QQ+2B314")
    assert mail.code == 250, mail
    rcpt = await client.command(
        "RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@old.test"
    )
    assert rcpt.code == 250, rcpt
    assert (await client.command("RCPT TO:<carol@example.net> NOTIFY=never")).code == 250
    assert (await client.command("RCPT TO:<dave@example.net>")).code == 250
    assert (await client.command("DATA")).code == 354
    assert (await client.command(MESSAGE.removesuffix(".\r\n") + ".")).code == 250
    await client.close()
    await wait_until(ingress.submitted, 10, "the message on the submit queue")


@pytest.mark.parametrize(
    ("command", "text"),
    [
        ("MAIL FROM:<a@example.org> RET=ALL", "501 5.5.4 RET must be FULL or HDRS"),
        ("MAIL FROM:<a@example.org> RET", "501 5.5.4 RET must be FULL or HDRS"),
        ("MAIL FROM:<a@example.org> ENVID=a+zz", "501 5.5.4 ENVID must be xtext"),
        ("MAIL FROM:<a@example.org> ENVID=" + "x" * 101, "501 5.5.4 ENVID must be xtext"),
    ],
)
async def test_malformed_mail_dsn_parameters_are_501(
    start_ingress: StartIngress, command: str, text: str
) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command(command)).text.startswith(text)
    await client.close()


@pytest.mark.parametrize(
    ("parameters", "text"),
    [
        ("NOTIFY=NEVER,SUCCESS", "501 5.5.4 NOTIFY"),
        ("NOTIFY=SOMETIMES", "501 5.5.4 NOTIFY"),
        ("NOTIFY=SUCCESS,SUCCESS", "501 5.5.4 NOTIFY"),
        ("ORCPT=bob@old.test", "501 5.5.4 ORCPT"),
        ("ORCPT=rfc822;a+2", "501 5.5.4 ORCPT"),
        ("XFOO=1", "555 5.5.4"),
    ],
)
async def test_malformed_rcpt_dsn_parameters_are_refused(
    start_ingress: StartIngress, parameters: str, text: str
) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await client.command(f"RCPT TO:<b@example.net> {parameters}")).text.startswith(text)
    await client.close()


async def test_the_dsn_parameters_travel_in_the_envelope(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (
        await client.command("MAIL FROM:<alice@example.org> RET=HDRS ENVID=QQ+2B314")
    ).code == 250
    rcpt = "RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@old.test"
    assert (await client.command(rcpt)).code == 250
    assert (await client.command("RCPT TO:<carol@example.net> NOTIFY=never")).code == 250
    assert (await client.command("DATA")).code == 354
    assert (await client.command(MESSAGE.removesuffix(".\r\n") + ".")).code == 250
    await client.close()
    [(_, envelope)] = await ingress.submitted()
    assert (envelope.ret, envelope.envid) == ("HDRS", "QQ+314")
    assert envelope.rcpt_params == {
        "bob@example.net": RecipientParams(
            notify=("SUCCESS", "FAILURE"), orcpt="rfc822;b+x@old.test"
        ),
        "carol@example.net": RecipientParams(notify=("NEVER",)),
    }
