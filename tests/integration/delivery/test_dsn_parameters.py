"""RFC 3461 DSN parameters in delivery: passed on to DSN servers, honoured where they stop."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from postline.bus import Delivery
from postline.models import EventKind, RecipientParams
from tests.integration.delivery.conftest import MxFor, Routed, StartDelivery
from tests.support.remote import Remote
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
BODY = b"From: alice@example.org\r\nSubject: Quarterly report\r\n\r\nsecret body\r\n"


def report(dsn: Delivery) -> tuple[EmailMessage, str, EmailMessage]:
    """The DSN's human part, its delivery-status text and its returned part."""
    message = email.message_from_bytes(dsn.body, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    human, status, returned = message.iter_parts()
    assert isinstance(human, EmailMessage) and isinstance(returned, EmailMessage)
    return human, status.as_string(), returned


async def test_dsn_parameters_are_passed_on_to_a_server_that_offers_dsn(
    start_delivery: StartDelivery, mx_for: MxFor, smtp_port: int
) -> None:
    mx_for("x.test")
    params = {
        "a@x.test": RecipientParams(notify=("SUCCESS", "FAILURE"), orcpt="rfc822;A+B@old.test"),
        "b@x.test": RecipientParams(notify=("DELAY",)),
    }
    async with Remote("127.0.0.1", smtp_port, "dsn") as remote:
        harness = await start_delivery()
        await harness.send(
            ["a@x.test", "b@x.test"], body=BODY, ret="HDRS", envid="Q 1+2", rcpt_params=params
        )
        await harness.flush(1)
    mail, rcpt_a, rcpt_b = remote.commands[1:4]
    assert mail.endswith(" RET=HDRS ENVID=Q+201+2B2")
    assert rcpt_a == "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A+2BB@old.test"
    assert rcpt_b == "RCPT TO:<b@x.test> NOTIFY=DELAY"
    assert harness.submitted == []  # the next hop owns the notifications now


async def test_notify_success_gets_a_relayed_dsn_when_the_next_hop_has_no_dsn(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed()
    params = {"a@x.test": RecipientParams(notify=("SUCCESS",), orcpt="rfc822;first@old.test")}
    await harness.send(["a@x.test", "b@x.test"], body=BODY, envid="ENV-7", rcpt_params=params)
    await harness.flush(1)
    [dsn] = harness.submitted
    human, status, _ = report(dsn)
    assert "<a@x.test>: relayed to a server that sends no further notifications" in str(
        human.get_content()
    )
    assert "Original-Envelope-Id: ENV-7" in status
    assert "Original-Recipient: rfc822; first@old.test" in status
    assert "Final-Recipient: rfc822; a@x.test\nAction: relayed\nStatus: 2.0.0" in status
    assert "b@x.test" not in status  # it asked for nothing
    assert dsn.envelope().rcpt_to == ("sender@example.org",)
    assert harness.of(EventKind.DSN_SENT)[0].rcpt_to == ("a@x.test",)


async def test_notify_never_sends_no_bounce_for_that_recipient(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed()
    never = {"permfail-1@x.test": RecipientParams(notify=("NEVER",))}
    await harness.send(["permfail-1@x.test"], rcpt_params=never)
    await harness.send(["permfail-1@x.test", "permfail-2@x.test"], rcpt_params=never)
    await harness.flush(2)
    [dsn] = harness.submitted
    _, status, _ = report(dsn)
    assert "permfail-2@x.test" in status and "permfail-1@x.test" not in status


@pytest.mark.parametrize(("ret", "full"), [("FULL", True), ("HDRS", False), (None, False)])
async def test_ret_decides_whether_the_bounce_returns_the_whole_message(
    routed: Routed, sink: SmtpSink, ret: str | None, full: bool
) -> None:
    harness = await routed()
    await harness.send(["permfail@x.test"], body=BODY, ret=ret)
    await harness.flush(1)
    [dsn] = harness.submitted
    _, _, returned = report(dsn)
    assert returned.get_content_type() == ("message/rfc822" if full else "text/rfc822-headers")
    assert (b"secret body" in dsn.body) is full
    assert b"Subject: Quarterly report" in dsn.body
