"""Every phase takes exactly its expected replies; any other reply defers with 451 4.5.0.

Only a 2xx reply to the end of the message data delivers. A wrong code at any
phase, a multi-line reply with mixed codes, an enhanced code of another class, a
malformed reply line or a reply to a command not sent yet is a temporary protocol
error: deferred for a retry, with the remote's words in the reply, never delivered,
never bounced. A hang-up at any phase is a lost connection (4.4.2), also deferred.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from postline.models import Event, EventKind
from postline.reply import SmtpReply
from tests.integration.delivery.conftest import Routed
from tests.integration.delivery.harness import BODY, DeliveryHarness
from tests.support.remote import Remote

pytestmark = pytest.mark.integration

RECIPIENT = "rcpt@x.test"

PROTOCOL_ERRORS = [  # (mode, words of the remote that the reply must keep)
    ("greeting-250", "words-greeting"),
    ("greeting-mixed", "words-greeting-mixed"),
    ("greeting-long", "words-long"),
    ("ehlo-220", "words-ehlo"),
    ("ehlo-354", "words-ehlo"),
    ("ehlo-extra", "words-extra"),
    ("starttls-250", "words-starttls"),
    ("starttls-mixed", "words-starttls-mixed"),
    ("mail-252", "words-mail"),
    ("mail-354", "words-mail"),
    ("mail-class", "words-mail-class"),
    ("rcpt-252", "words-rcpt"),
    ("rcpt-354", "words-rcpt"),
    ("rcpt-mixed", "words-rcpt-mixed"),
    ("rcpt-class", "words-rcpt-class"),
    ("rcpt-malformed", "25 words-malformed"),
    ("rcpt-no-space", "250words-no-space"),
    ("data-250", "words-data"),
    ("data-220", "words-data"),
    ("end-354", "words-end"),
    ("end-mixed", "words-end-mixed"),
    ("end-class", "words-end-class"),
    ("early", "recipient ok"),
]

HANGUPS = [
    "hangup-greeting",
    "hangup-ehlo",
    "hangup-mail",
    "hangup-rcpt",
    "hangup-rcpt-partial",
    "hangup-data",
    "hangup-end",
]


def delivered_count() -> float:
    name = "postline_delivery_attempts_total"
    return REGISTRY.get_sample_value(name, {"result": "delivered"}) or 0.0


async def outcome_of_one_message(
    routed: Routed, smtp_port: int, mode: str
) -> tuple[DeliveryHarness, Remote]:
    """Send one message to a remote in ``mode``; wait until delivery has finished with it."""
    policy = "required" if mode.startswith("starttls") else "opportunistic"
    async with Remote("127.0.0.1", smtp_port, mode) as remote:
        harness = await routed(retry_schedule="1m", tls_policy=policy)
        await harness.send([RECIPIENT])
        await harness.flush(1)
    return harness, remote


def only_deferral(harness: DeliveryHarness) -> Event:
    kinds = [(e.kind.value, str(e.reply)) for e in harness.events if e.recipient == RECIPIENT]
    deferred = harness.of(EventKind.DEFERRED, RECIPIENT)
    assert len(deferred) == 1, f"expected one deferral, got {kinds}"
    assert harness.of(EventKind.DELIVERED) == [], f"recorded as delivered: {kinds}"
    assert harness.of(EventKind.BOUNCED) == [], f"bounced: {kinds}"
    assert harness.submitted == [], "a DSN was sent"
    return deferred[0]


async def deferred_once(
    routed: Routed, smtp_port: int, mode: str, enhanced: str
) -> tuple[DeliveryHarness, SmtpReply, Event]:
    """One message to a remote in ``mode``: deferred once with ``451 <enhanced>``, never
    delivered (not even counted as delivered), never bounced."""
    before = delivered_count()
    harness, _ = await outcome_of_one_message(routed, smtp_port, mode)
    deferred = only_deferral(harness)
    assert deferred.reply is not None
    assert (deferred.reply.code, deferred.reply.enhanced) == (451, enhanced), str(deferred.reply)
    assert delivered_count() == before
    return harness, deferred.reply, deferred


@pytest.mark.parametrize(("mode", "words"), PROTOCOL_ERRORS)
async def test_wrong_reply_defers_as_a_protocol_error_with_the_remotes_words(
    routed: Routed, smtp_port: int, mode: str, words: str
) -> None:
    harness, reply, deferred = await deferred_once(routed, smtp_port, mode, "4.5.0")
    assert words in reply.text, str(reply)
    assert deferred.next_attempt_at is not None
    assert (deferred.reason or "").endswith("; retry via tier 1m")
    lines = [line for talk in harness.of(EventKind.CONVERSATION) for line in talk.transcript or []]
    assert any(words in line for line in lines), lines


@pytest.mark.parametrize("mode", HANGUPS)
async def test_hang_up_at_any_phase_is_a_lost_connection_and_deferred(
    routed: Routed, smtp_port: int, mode: str
) -> None:
    await deferred_once(routed, smtp_port, mode, "4.4.2")


async def test_well_behaved_remote_gets_the_message_and_it_is_delivered(
    routed: Routed, smtp_port: int
) -> None:
    harness, remote = await outcome_of_one_message(routed, smtp_port, "well-behaved")
    [delivered] = harness.of(EventKind.DELIVERED, RECIPIENT)
    assert delivered.reply is not None and str(delivered.reply) == "250 2.0.0 stored"
    assert remote.messages == [BODY]
