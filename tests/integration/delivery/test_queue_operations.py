"""Operator actions (``postline queue``) as delivery applies them, on the real broker.

The tests play the audit side: ``harness.act`` appends the action to the
control stream, and ``Taken`` takes a message out of a tier or the held queue
and puts a copy on ``deliver`` with ``postline-flush``, as the flusher does
(publish confirmed, then ack; or no ack at all, a flusher that crashed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage

from postline.control import COPY_HEADER, DUE_HEADER, EXPIRES_HEADER, ControlState, copy_of
from postline.delivery import metrics
from postline.delivery.operator import epoch_ms
from postline.models import ENVELOPE_HEADER, Envelope, EventKind, new_message_id, utcnow
from tests.integration.delivery.conftest import Routed, StartDelivery
from tests.integration.delivery.harness import DeliveryHarness, _counter
from tests.support.broker import BROKER_URL, wait_until
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


class Taken:
    """One message taken (unacked) from a queue, as the flusher holds it."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self.connection = connection
        self.message: AbstractIncomingMessage | None = None

    @property
    def envelope(self) -> Envelope:
        assert self.message is not None
        return Envelope.from_header(self.message.headers[ENVELOPE_HEADER])  # type: ignore[arg-type]

    async def take(self, queue_name: str, timeout: float = 15) -> AbstractIncomingMessage:
        channel = await self.connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)

        async def got() -> bool:
            self.message = await queue.get(no_ack=False, fail=False)
            return self.message is not None

        await wait_until(got, timeout, f"a message in {queue_name}")
        assert self.message is not None
        return self.message

    async def flush_to_deliver(self, harness: DeliveryHarness, request_id: str) -> None:
        """The flusher's step: a copy to ``deliver`` for ``request_id``, then the ack."""
        await harness.publish_copy(self.envelope, request_id, self.body, self.copy)
        assert self.message is not None
        await self.message.ack()

    @property
    def copy(self) -> str | None:
        assert self.message is not None
        return copy_of(self.message.headers)

    @property
    def body(self) -> bytes:
        assert self.message is not None
        return self.message.body


@pytest.fixture
async def taken() -> AsyncIterator[Taken]:
    connection = await aio_pika.connect(BROKER_URL)
    yield Taken(connection)
    await connection.close()


async def done_markers(harness: DeliveryHarness) -> ControlState:
    """A fresh reader of the control stream, caught up."""
    state = ControlState(harness.bus.topology.control_stream)
    await state.start(await harness.bus.open_connection("test-control"))
    assert await state.wait_synced(10)
    return state


async def test_a_deleted_message_is_settled_without_an_attempt_or_a_dsn(
    routed: Routed, sink: SmtpSink, taken: Taken
) -> None:
    harness = await routed(retry_schedule="30s")
    envelope = await harness.send(["tempfail-d@x.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "tempfail-d@x.test")
    delete = await harness.act("delete", envelope, reason="sent by mistake")
    message = await taken.take(harness.bus.topology.tier_queue("30s"))
    assert deferred.next_attempt_at is not None
    assert message.headers[DUE_HEADER] == epoch_ms(deferred.next_attempt_at)
    await taken.flush_to_deliver(harness, delete.request_id)

    [event] = await harness.wait_for(EventKind.OPERATOR)
    assert (event.action, event.reason, event.actor) == ("delete", "sent by mistake", "tester")
    assert event.rcpt_to == ("tempfail-d@x.test",)
    assert event.message_id == envelope.message_id and event.service == "delivery"
    await harness.flush(2)
    assert len(sink.attempts) == 1, "no attempt after the delete"
    assert harness.submitted == [], "a delete sends no DSN"
    state = await done_markers(harness)
    assert state.is_done(envelope.message_id, 1, copy_of(message.headers))
    await state.close()


async def test_a_bounced_message_sends_the_sender_a_dsn_saying_so(
    routed: Routed, sink: SmtpSink, taken: Taken
) -> None:
    harness = await routed(retry_schedule="30s")
    envelope = await harness.send(["tempfail-b@x.test"])
    await harness.wait_for(EventKind.DEFERRED, "tempfail-b@x.test")
    bounce = await harness.act("bounce", envelope, reason="destination gone")
    await taken.take(harness.bus.topology.tier_queue("30s"))
    await taken.flush_to_deliver(harness, bounce.request_id)

    [event] = await harness.wait_for(EventKind.OPERATOR)
    assert event.action == "bounce"
    [sent] = await harness.wait_for(EventKind.DSN_SENT)
    await harness.flush(2)
    [dsn] = harness.submitted
    text = dsn.body.decode()
    assert "Action: failed" in text and "Status: 5.0.0" in text
    assert "550 5.0.0 bounced by operator: destination gone" in text
    assert sent.rcpt_to == ("tempfail-b@x.test",)
    assert len(sink.attempts) == 1


async def test_a_held_message_waits_in_held_with_its_expiry_and_release_delivers_it(
    routed: Routed, sink: SmtpSink, taken: Taken
) -> None:
    harness = await routed(retry_schedule="30s", max_queue_lifetime="1h")
    envelope = await harness.send(["flaky1-h@x.test"])
    await harness.wait_for(EventKind.DEFERRED, "flaky1-h@x.test")
    hold = await harness.act("hold", envelope, reason="destination misbehaving")
    in_tier = await taken.take(harness.bus.topology.tier_queue("30s"))
    tier_envelope = taken.envelope
    await taken.flush_to_deliver(harness, hold.request_id)

    [event] = await harness.wait_for(EventKind.OPERATOR)
    assert event.action == "hold"
    held = await taken.take(harness.bus.topology.held_queue)
    assert tier_envelope.first_attempt_at is not None
    lifetime_end = tier_envelope.first_attempt_at + timedelta(hours=1)
    assert held.headers[EXPIRES_HEADER] == epoch_ms(lifetime_end)
    assert isinstance(held.expiration, float) and 3500 < held.expiration <= 3600  # seconds
    assert taken.envelope.attempt == 1, "holding is no attempt"
    assert held.headers[COPY_HEADER] != in_tier.headers[COPY_HEADER], "a new copy: not dropped"
    assert len(sink.attempts) == 1

    release = await harness.act("release", envelope)
    await taken.flush_to_deliver(harness, release.request_id)
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "flaky1-h@x.test")
    assert delivered.attempt == 2
    released = [e for e in harness.of(EventKind.OPERATOR) if e.action == "release"]
    assert len(released) == 1
    assert [m.rcpt_tos for m in sink.messages] == [("flaky1-h@x.test",)]


async def test_a_held_message_expires_at_the_end_of_its_lifetime(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(retry_schedule="2s", max_queue_lifetime="5s")
    envelope = await harness.send(["tempfail-e@x.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "tempfail-e@x.test")
    await harness.act("hold", envelope, reason="hold it")  # no flush: it comes back by itself

    [held] = await harness.wait_for(EventKind.OPERATOR, timeout=10)
    assert held.action == "hold"
    [expired] = await harness.wait_for(EventKind.EXPIRED, "tempfail-e@x.test", timeout=15)
    assert expired.reply is not None and (expired.reply.code, expired.reply.enhanced) == (
        451,
        "4.4.7",
    )
    assert (expired.at - deferred.at).total_seconds() >= 4.5
    await harness.flush(3)  # the attempt, the hold, the expiry
    [dsn] = harness.submitted
    assert "delivery time expired" in dsn.body.decode()
    assert len(sink.attempts) == 1, "held mail is never attempted"


async def test_a_retry_delivers_at_once_and_the_copy_a_crashed_flush_left_is_dropped(
    routed: Routed, sink: SmtpSink, taken: Taken
) -> None:
    harness = await routed(retry_schedule="3s")
    envelope = await harness.send(["flaky1-r@x.test"])
    await harness.wait_for(EventKind.DEFERRED, "flaky1-r@x.test")
    dropped = _counter(metrics.DUPLICATES_DROPPED)
    retry = await harness.act("retry", envelope)
    await taken.take(harness.bus.topology.tier_queue("3s"))
    await harness.publish_copy(taken.envelope, retry.request_id, taken.body, taken.copy)

    [delivered] = await harness.wait_for(EventKind.DELIVERED, "flaky1-r@x.test")
    [event] = harness.of(EventKind.OPERATOR)
    assert event.action == "retry" and event.at <= delivered.at
    state = await done_markers(harness)
    copy = taken.copy
    assert copy is not None
    await wait_until(lambda: state.is_done(envelope.message_id, 1, copy), 10, "the done marker")
    await state.close()
    await taken.connection.close()  # the flusher dies before its ack: the original returns
    await wait_until(
        lambda: _counter(metrics.DUPLICATES_DROPPED) > dropped, 15, "the leftover copy dropped"
    )
    await harness.flush(3)
    assert [m.rcpt_tos for m in sink.messages] == [("flaky1-r@x.test",)]
    assert len(harness.of(EventKind.DELIVERED)) == 1


async def test_without_a_flush_a_retry_action_changes_nothing(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(retry_schedule="1s")
    envelope = await harness.send(["flaky1-n@x.test"])
    await harness.wait_for(EventKind.DEFERRED, "flaky1-n@x.test")
    await harness.act("retry", envelope)
    await harness.wait_for(EventKind.DELIVERED, "flaky1-n@x.test")
    await harness.flush(2)
    assert harness.of(EventKind.OPERATOR) == [], "only a copy moved for the request says so"


async def test_a_delay_warning_is_sent_once(routed: Routed, sink: SmtpSink) -> None:
    harness = await routed(retry_schedule="1s", delay_warning_after="2s")
    envelope = await harness.send(["tempfail-w@x.test"])
    await harness.wait_for(EventKind.DEFERRED, "tempfail-w@x.test", count=5, timeout=20)
    [delayed] = harness.of(EventKind.DELAYED, "tempfail-w@x.test")
    assert delayed.reply is not None and delayed.reply.code == 451
    deferrals = len(harness.of(EventKind.DEFERRED))
    await harness.flush(deferrals)
    [warning] = [
        d for d in harness.submitted if d.message_id == f"{envelope.message_id}.D{delayed.attempt}"
    ]
    text = warning.body.decode()
    assert "Action: delayed" in text and "Status: 4.3.0" in text
    assert "Will-Retry-Until:" in text
    assert len(harness.submitted) == 1
    assert (delayed.at - envelope.received_at).total_seconds() >= 2


async def test_no_delay_warning_for_the_null_sender(routed: Routed, sink: SmtpSink) -> None:
    harness = await routed(retry_schedule="1s", delay_warning_after="1s")
    await harness.send(["tempfail-z@x.test"], mail_from="")
    await harness.wait_for(EventKind.DEFERRED, "tempfail-z@x.test", count=4, timeout=20)
    await harness.flush(len(harness.of(EventKind.DEFERRED)))
    assert harness.submitted == []
    assert harness.of(EventKind.DELAYED) == []


async def test_a_delivery_started_later_honours_actions_recorded_before_it_started(
    routed: Routed, start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    first = await routed()
    envelope = Envelope(
        message_id=new_message_id(),
        mail_from="sender@example.org",
        rcpt_to=("d@x.test",),
        received_at=utcnow() - timedelta(minutes=1),
    )
    delete = await first.act("delete", envelope, reason="before the restart")
    await first.stop()

    second = await start_delivery()
    assert second.service.ready and second.service.control.synced.is_set()
    await second.publish_copy(envelope, flush=delete.request_id)
    [event] = await second.wait_for(EventKind.OPERATOR)
    assert (event.action, event.reason) == ("delete", "before the restart")
    await second.flush(1)
    assert sink.attempts == []
