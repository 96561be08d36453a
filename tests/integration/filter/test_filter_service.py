"""The filter service against the real RabbitMQ: submit -> chain -> deliver + events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from postline.app.settings import Settings, topology_for
from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.filter.settings import FilterSettings
from postline.models import Envelope, Event, EventKind, new_message_id
from postline.reply import reply
from postline.topology import Stage
from tests.integration.filter.rig import Rig
from tests.support.broker import queue_depth, wait_until

pytestmark = pytest.mark.integration

HERE = "tests.integration.filter.test_filter_service"
BODY = b"Hello John,\r\n\r\n.a line starting with a dot\r\n\tand a tab\r\n\r\n\r\n"
HEADERS = b"From: Mary <mary@company.test>\r\nTo: john@partner.test\r\nSubject: hi\r\n"


class RejectAll:
    """Test filter: refuses every message with its own reply."""

    name = "reject-all"

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        return Decision.reject("policy says no", reply(554, "5.7.1", "Rejected by test policy"))


class Hang:
    """Test filter: never answers (within any sane timeout)."""

    name = "hang"

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        await asyncio.sleep(3600)
        return Decision.proceed()


class CrashOnce:
    """Test filter: raises on its first message only (a bug or a hiccup)."""

    name = "crash-once"
    calls = 0

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        CrashOnce.calls += 1
        if CrashOnce.calls == 1:
            raise RuntimeError("filter bug")
        return Decision.proceed()


def envelope(*rcpt_to: str) -> Envelope:
    return Envelope(
        message_id=new_message_id(),
        mail_from="mary@company.test",
        rcpt_to=rcpt_to or ("john@partner.test",),
        received_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        client_ip="127.0.0.1",
        helo="laptop.company.test",
        tls=True,
        auth_user="mary",
    )


async def test_message_on_submit_arrives_on_deliver_with_added_headers_and_same_body(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await rig_factory()
    env = envelope()
    await rig.probe.publish_stage(Stage.SUBMIT, HEADERS + b"\r\n" + BODY, env)
    await wait_until(lambda: len(rig.delivered) == 1, 15, "the message on deliver")
    delivery = rig.delivered[0]
    assert delivery.envelope() == env
    assert delivery.message_id == env.message_id
    assert delivery.body.startswith(
        b"Received: from laptop.company.test ([127.0.0.1])\r\n"
        b"\tby relay.test (Postline) with ESMTPSA id " + env.message_id.encode() + b"\r\n"
        b"\tfor <john@partner.test>; Wed, 04 Mar 2026 05:06:07 +0000\r\n" + HEADERS
    )
    assert delivery.body.endswith(
        HEADERS
        + f"Message-ID: <{env.message_id}@relay.test>\r\n".encode()
        + b"Date: Wed, 04 Mar 2026 05:06:07 +0000\r\n\r\n"
        + BODY
    )
    await wait_until(lambda: rig.of_kind(EventKind.FILTERED), 10, "the filtered event")
    [event] = rig.of_kind(EventKind.FILTERED)
    assert event.message_id == env.message_id and event.rcpt_to == env.rcpt_to
    assert event.mail_from == "mary@company.test"
    assert event.reason is not None and event.reason.startswith("filters: headers")
    submit = topology_for(rig.settings).queue_name(Stage.SUBMIT)
    assert await queue_depth(rig.settings.broker.url, submit) == 0


async def test_rejecting_filter_yields_rejected_events_one_dsn_and_nothing_on_deliver(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await rig_factory(consume_deliver=False, chain=["headers", f"{HERE}:RejectAll"])
    env = envelope("john@partner.test", "ann@other.test")
    await rig.probe.publish_stage(Stage.SUBMIT, HEADERS + b"\r\n" + BODY, env)
    dsn_id = f"{env.message_id}.B0"

    def rejected(message_id: str) -> list[Event]:
        return [e for e in rig.of_kind(EventKind.REJECTED) if e.message_id == message_id]

    await wait_until(lambda: len(rejected(env.message_id)) == 2, 15, "rejected events")
    assert {e.recipient for e in rejected(env.message_id)} == {
        "john@partner.test",
        "ann@other.test",
    }
    for event in rejected(env.message_id):
        assert str(event.reply) == "554 5.7.1 Rejected by test policy"
        assert event.reason == "rejected by filter reject-all: policy says no"
    [sent] = rig.of_kind(EventKind.DSN_SENT)
    assert sent.message_id == env.message_id and dsn_id in (sent.reason or "")
    assert set(sent.rcpt_to or ()) == {"john@partner.test", "ann@other.test"}
    # The DSN itself went through submit; this chain rejects it too, and a bounce never
    # bounces: its rejection is recorded and no second DSN follows.
    await wait_until(lambda: rejected(dsn_id), 15, "the DSN to pass through the filter")
    assert [e.recipient for e in rejected(dsn_id)] == ["mary@company.test"]
    # Once stopped, the service has either acked the message or returned it to submit.
    await rig.stop_service()
    topology = topology_for(rig.settings)
    assert await queue_depth(rig.settings.broker.url, topology.queue_name(Stage.SUBMIT)) == 0
    assert await queue_depth(rig.settings.broker.url, topology.queue_name(Stage.DELIVER)) == 0
    assert rig.of_kind(EventKind.FILTERED) == []
    assert len(rig.of_kind(EventKind.DSN_SENT)) == 1


async def test_filter_past_its_timeout_requeues_until_the_message_is_parked(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await rig_factory(chain=[f"{HERE}:Hang"], timeout="0.2s")
    env = envelope()
    await rig.probe.publish_stage(Stage.SUBMIT, HEADERS + b"\r\n" + BODY, env)
    parked = topology_for(rig.settings).parked_queue
    await wait_until(lambda: _depth_is(rig.settings, parked, 1), 20, "the message in parked")
    assert rig.delivered == []


async def test_filter_that_raises_gets_the_message_again_and_it_then_passes(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    CrashOnce.calls = 0
    rig = await rig_factory(chain=[f"{HERE}:CrashOnce", "headers"])
    env = envelope()
    await rig.probe.publish_stage(Stage.SUBMIT, HEADERS + b"\r\n" + BODY, env)
    await wait_until(lambda: len(rig.delivered) == 1, 15, "the message on deliver")
    assert CrashOnce.calls == 2
    assert rig.delivered[0].envelope() == env
    assert rig.delivered[0].body.endswith(b"\r\n\r\n" + BODY)


class StallMeter:
    """Ticks every 10 ms on the test's event loop; ``longest`` is the worst gap seen."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            self.longest, last = max(self.longest, now - last), now

    async def stop(self) -> float:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.longest


async def test_header_folded_over_many_lines_is_refused_at_once_while_other_mail_flows(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    """A source other than ingress (no header limit there) sends a hostile header."""
    rig = await rig_factory()
    hostile, ordinary = envelope("ann@other.test"), envelope()
    folded = HEADERS + b"X-Folded: x\r\n" + b" a\r\n" * 200_000 + b"\r\n" + BODY
    meter = StallMeter()
    await rig.probe.publish_stage(Stage.SUBMIT, folded, hostile)
    await rig.probe.publish_stage(Stage.SUBMIT, HEADERS + b"\r\n" + BODY, ordinary)

    def handled(message_id: str) -> bool:
        refused = [e.message_id for e in rig.of_kind(EventKind.REJECTED)]
        return message_id in [d.message_id for d in rig.delivered] + refused

    await wait_until(
        lambda: handled(ordinary.message_id) and handled(hostile.message_id), 30, "both"
    )
    stall = await meter.stop()
    assert stall < 0.5, f"the event loop stalled for {stall:.2f}s"
    [refused] = [e for e in rig.of_kind(EventKind.REJECTED) if e.message_id == hostile.message_id]
    assert refused.reply is not None and str(refused.reply).startswith("554 5.6.0")
    assert refused.reason == (
        "rejected by filter header-limits: header section of more than 20000 lines"
    )
    assert all(d.message_id != hostile.message_id for d in rig.delivered)


async def _depth_is(settings: Settings, queue: str, depth: int) -> bool:
    return await queue_depth(settings.broker.url, queue) == depth
