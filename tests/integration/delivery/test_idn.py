"""Internationalised domains: IDNA 2008 A-labels for DNS and routes, U-labels where allowed."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import MxFor, StartDelivery
from tests.support.dns_server import DnsServer
from tests.support.remote import Remote
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
A_LABEL = "xn--strae-oqa.test"  # straße.test in IDNA 2008 (IDNA 2003 would say strasse.test)


async def test_a_u_label_domain_is_looked_up_and_sent_as_is_to_an_smtputf8_server(
    start_delivery: StartDelivery, mx_for: MxFor, dns: DnsServer, sink: SmtpSink
) -> None:
    mx_for(A_LABEL)
    harness = await start_delivery()
    await harness.send(["bob@straße.test"], mail_from="rené@straße.test", smtputf8=True)
    await harness.wait_for(EventKind.DELIVERED, "bob@straße.test")
    [received] = sink.wait_for(1, 5)
    assert received.rcpt_tos == ("bob@straße.test",)
    assert (A_LABEL, "MX") in dns.queries
    assert not any(name == "strasse.test" for name, _ in dns.queries)


async def test_a_server_without_smtputf8_gets_a_labels_instead_of_a_bounce(
    start_delivery: StartDelivery, mx_for: MxFor, smtp_port: int
) -> None:
    mx_for(A_LABEL)
    async with Remote("127.0.0.1", smtp_port, "plain") as remote:
        harness = await start_delivery()
        await harness.send(["bob@straße.test"], mail_from="alice@straße.test", smtputf8=True)
        await harness.wait_for(EventKind.DELIVERED, "bob@straße.test")
    mail, rcpt = remote.commands[1:3]
    assert mail.startswith(f"MAIL FROM:<alice@{A_LABEL}> SIZE=") and "SMTPUTF8" not in mail
    assert rcpt == f"RCPT TO:<bob@{A_LABEL}>"


async def test_a_smtputf8_message_that_needs_nothing_of_it_is_sent_without_it(
    start_delivery: StartDelivery, mx_for: MxFor, smtp_port: int
) -> None:
    mx_for("x.test")
    async with Remote("127.0.0.1", smtp_port, "plain") as remote:
        harness = await start_delivery()
        await harness.send(["bob@x.test"], smtputf8=True)  # ASCII addresses and headers
        await harness.wait_for(EventKind.DELIVERED, "bob@x.test")
    assert not any("SMTPUTF8" in command for command in remote.commands)


@pytest.mark.parametrize(
    ("route_key", "recipient"),
    [("straße.test", f"bob@{A_LABEL}"), (A_LABEL, "bob@straße.test")],
)
async def test_a_route_matches_its_domain_in_either_spelling(
    start_delivery: StartDelivery, dns: DnsServer, sink: SmtpSink, route_key: str, recipient: str
) -> None:
    harness = await start_delivery(routes={route_key: f"[127.0.0.1]:{sink.port}"})
    await harness.send([recipient], smtputf8=not recipient.isascii())
    await harness.wait_for(EventKind.DELIVERED, recipient)
    assert dns.queries == []  # the route, not an MX lookup
