"""A session that got more replies than commands is never reused, and counted.

A remote that answers the final dot twice (in one write, or the second one on
its own a moment later), or that answers an RSET before it was sent, leaves a
reply waiting on the session. Reused, that session would read every reply one
step late and take RCPT's 250 for DATA's: the next message recorded as delivered
while its body was never sent. The session is closed instead (and counted in
``postline_delivery_out_of_step_total``): every message recorded as delivered
reached the remote with its body.
"""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.integration.delivery.harness import DeliveryHarness
from tests.support.remote import Remote

pytestmark = pytest.mark.integration


def out_of_step() -> float:
    return REGISTRY.get_sample_value("postline_delivery_out_of_step_total") or 0.0


def body(n: int) -> bytes:
    return f"Subject: message {n}\r\n\r\nbody-of-message-{n}\r\n".encode()


async def two_messages_in_a_row(harness: DeliveryHarness) -> list[str]:
    """Send two messages, the second after the first is settled; their message ids."""
    ids = []
    for n in (1, 2):
        envelope = await harness.send([f"r{n}@x.test"], body=body(n))
        ids.append(envelope.message_id)
        await harness.flush(n)
    return ids


def assert_delivered_only_with_body(harness: DeliveryHarness, remote: Remote) -> None:
    for n in (1, 2):
        recipient = f"r{n}@x.test"
        outcomes = [e.kind for e in harness.events if e.recipient == recipient]
        assert outcomes in ([EventKind.DELIVERED], [EventKind.DEFERRED]), outcomes
        if outcomes == [EventKind.DELIVERED]:
            assert any(f"body-of-message-{n}".encode() in m for m in remote.messages), (
                f"message {n} recorded as delivered, but its body never reached the remote; "
                f"remote commands: {remote.commands}"
            )


@pytest.mark.parametrize("mode", ["double-reply", "double-reply-late", "rset-early"])
async def test_session_with_a_reply_too_many_is_closed_not_reused(
    routed: Routed, smtp_port: int, mode: str
) -> None:
    before = out_of_step()
    async with Remote("127.0.0.1", smtp_port, mode) as remote:
        harness = await routed(retry_schedule="1m")
        first, second = await two_messages_in_a_row(harness)
        assert remote.connections == 2, "the out-of-step session was used again"
    assert_delivered_only_with_body(harness, remote)
    assert harness.of(EventKind.DELIVERED, "r1@x.test"), "the first message was accepted"
    assert harness.of(EventKind.DELIVERED, "r2@x.test"), "a fresh session delivers the second"
    talks = {t.message_id: t for t in harness.of(EventKind.CONVERSATION)}
    assert talks[first].session_id != talks[second].session_id
    assert "> RSET" not in (talks[second].transcript or [])
    assert out_of_step() == before + 2  # each session answered the final dot too often


async def test_early_pipelined_replies_defer_and_the_session_is_not_reused(
    routed: Routed, smtp_port: int
) -> None:
    before = out_of_step()
    async with Remote("127.0.0.1", smtp_port, "early") as remote:
        harness = await routed(retry_schedule="1m")
        await two_messages_in_a_row(harness)
        assert remote.connections == 2, "the out-of-step session was used again"
    assert_delivered_only_with_body(harness, remote)
    assert len(harness.of(EventKind.DEFERRED)) == 2
    assert out_of_step() == before + 2


async def test_well_behaved_remote_still_gets_both_messages_over_one_session(
    routed: Routed, smtp_port: int
) -> None:
    async with Remote("127.0.0.1", smtp_port, "well-behaved") as remote:
        harness = await routed(retry_schedule="1m")
        await two_messages_in_a_row(harness)
        assert remote.connections == 1
    assert remote.messages == [body(1), body(2)]
    assert len(harness.of(EventKind.DELIVERED)) == 2
