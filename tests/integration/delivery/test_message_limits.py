"""What the remote announces is honoured: SIZE limits and SMTPUTF8; bad addresses bounce."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


@pytest.fixture
def small_sink(smtp_port: int) -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", smtp_port, size_limit=100) as server:
        yield server


async def test_message_over_the_announced_size_bounces_without_data(
    routed: Routed, small_sink: SmtpSink
) -> None:
    harness = await routed()
    await harness.send(["a@x.test"], body=b"Subject: big\r\n\r\n" + b"x" * 200 + b"\r\n")
    [bounced] = await harness.wait_for(EventKind.BOUNCED, "a@x.test")
    assert bounced.reply is not None
    assert (bounced.reply.code, bounced.reply.enhanced) == (552, "5.3.4")
    assert small_sink.attempts == []


async def test_smtputf8_message_to_a_server_without_smtputf8_bounces(
    routed: Routed, smtp_port: int
) -> None:
    # A non-ASCII local part cannot be downgraded (RFC 6531 3.2); an IDN domain can
    # (test_idn.py), and an SMTPUTF8 message that needs nothing of it is sent without.
    with SmtpSink("127.0.0.1", smtp_port, smtputf8=False) as ascii_sink:
        harness = await routed()
        await harness.send(["jörg@x.test"], smtputf8=True)
        [bounced] = await harness.wait_for(EventKind.BOUNCED, "jörg@x.test")
    assert bounced.reply is not None and bounced.reply.enhanced == "5.6.7"
    assert ascii_sink.attempts == []


async def test_smtputf8_message_is_sent_with_the_smtputf8_parameter(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed()
    await harness.send(["jörg@x.test"], mail_from="rené@example.org", smtputf8=True)
    await harness.wait_for(EventKind.DELIVERED, "jörg@x.test")
    [received] = sink.wait_for(1, 5)
    assert received.mail_from == "rené@example.org"
    assert received.rcpt_tos == ("jörg@x.test",)


async def test_recipient_without_a_domain_bounces_and_others_are_delivered(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed()
    await harness.send(["no-domain", "a@x.test"])
    [bounced] = await harness.wait_for(EventKind.BOUNCED, "no-domain")
    assert bounced.reply is not None and bounced.reply.enhanced == "5.1.3"
    await harness.wait_for(EventKind.DELIVERED, "a@x.test")
