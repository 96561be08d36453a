"""What the handler publishes for each verdict: defer through the retry tiers, discard audited.

The bus is a recording fake (tests/integration/filter runs the same against RabbitMQ).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from prometheus_client import REGISTRY

from postline.bus import Bus, Delivery, Poison
from postline.filter.api import Decision
from postline.filter.chain import Chain
from postline.filter.deferral import checked_schedule, default_schedule, plan_defer
from postline.filter.handler import FilterHandler
from postline.filter.message import FilterMessage
from postline.models import ENVELOPE_HEADER, Envelope, Event, EventKind
from postline.reply import reply
from postline.topology import Stage

BODY = b"From: mary@company.test\r\nSubject: hi\r\n\r\nhello\r\n"
SCHEDULE = (60.0, 300.0, 1800.0)


class RecordingBus:
    """What the handler publishes: events, stages and delayed (tier) publishes."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.stages: list[tuple[Stage, bytes]] = []
        self.delayed: list[tuple[Stage, str, bytes, Envelope]] = []

    async def publish_events(self, events: list[Event]) -> None:
        self.events.extend(events)

    async def publish_stage(self, stage: Stage, body: bytes, envelope: Envelope) -> None:
        self.stages.append((stage, body))

    async def publish_delayed(
        self, stage: Stage, tier: str, body: bytes, envelope: Envelope
    ) -> None:
        self.delayed.append((stage, tier, body, envelope))


class Answer:
    """Tags the message, then answers ``decision``."""

    name = "answer"

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    async def apply(self, message: FilterMessage) -> Decision:
        message.headers.append("X-Tagged", "yes")
        return self.decision


def delivery(received_at: datetime) -> Delivery:
    envelope = Envelope(
        message_id="4Q8ZT1K2M7XHBN3C",
        mail_from="mary@company.test",
        rcpt_to=("a@x.test", "b@y.test"),
        received_at=received_at,
    )
    return Delivery(BODY, {ENVELOPE_HEADER: envelope.to_header()}, envelope.message_id, None,
                    False, 0)  # fmt: skip


def run(decision: Decision) -> tuple[FilterHandler, RecordingBus]:
    bus = RecordingBus()
    chain = Chain([Answer(decision)], 5)
    return FilterHandler(chain, cast(Bus, bus), reporting_mta="relay.test",
                         defer_schedule=SCHEDULE), bus  # fmt: skip


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_deferred_message_goes_to_the_first_retry_tier_with_its_original_bytes() -> None:
    handler, bus = run(Decision.defer("scanner busy", reply(451, "4.7.1", "Try later")))
    deferred_before = sample("postline_filter_messages_total", {"verdict": "deferred"})
    await handler(delivery(datetime.now(UTC)))
    [(stage, tier, body, envelope)] = bus.delayed
    assert (stage, tier, body) == (Stage.SUBMIT, "1m", BODY)  # the X-Tagged edit is dropped
    assert envelope.message_id == "4Q8ZT1K2M7XHBN3C" and bus.stages == []
    assert [(e.kind, e.recipient) for e in bus.events] == [
        (EventKind.DEFERRED, "a@x.test"),
        (EventKind.DEFERRED, "b@y.test"),
    ]
    event = bus.events[0]
    assert event.reason == "deferred by filter answer (deferral 1): scanner busy"
    assert str(event.reply) == "451 4.7.1 Try later"
    assert event.next_attempt_at is not None
    assert sample("postline_filter_messages_total", {"verdict": "deferred"}) == deferred_before + 1


async def test_a_message_deferred_again_later_waits_in_the_next_tier() -> None:
    handler, bus = run(Decision.defer("scanner busy"))
    await handler(delivery(datetime.now(UTC) - timedelta(seconds=61)))
    [(_, tier, _, _)] = bus.delayed
    assert tier == "5m"
    assert bus.events[0].reason is not None and "(deferral 2)" in bus.events[0].reason


async def test_once_the_defer_schedule_is_used_up_the_message_is_parked() -> None:
    handler, bus = run(Decision.defer("scanner down"))
    parked_before = sample("postline_filter_messages_total", {"verdict": "parked"})
    with pytest.raises(Poison, match=r"scanner down \(defer_schedule 1m,5m,30m used up\)"):
        await handler(delivery(datetime.now(UTC) - timedelta(hours=1)))
    assert bus.delayed == [] and bus.events == [] and bus.stages == []
    assert sample("postline_filter_messages_total", {"verdict": "parked"}) == parked_before + 1


async def test_a_discarded_message_is_audited_per_recipient_with_no_dsn_and_no_delivery() -> None:
    handler, bus = run(Decision.discard("list is closed"))
    await handler(delivery(datetime.now(UTC)))
    assert bus.stages == [] and bus.delayed == []
    assert [(e.kind, e.recipient, e.reason) for e in bus.events] == [
        (EventKind.DISCARDED, "a@x.test", "discarded by filter answer: list is closed"),
        (EventKind.DISCARDED, "b@y.test", "discarded by filter answer: list is closed"),
    ]


async def test_a_filter_meeting_mime_beyond_the_limits_rejects_with_554_5_6_0() -> None:
    from postline.filter.mime import MimeTooComplex

    class Deep:
        name = "deep"

        async def apply(self, message: FilterMessage) -> Decision:
            raise MimeTooComplex("MIME nesting deeper than 30")

    bus = RecordingBus()
    handler = FilterHandler(Chain([Deep()], 5), cast(Bus, bus), reporting_mta="relay.test")
    await handler(delivery(datetime.now(UTC)))
    rejected = [e for e in bus.events if e.kind is EventKind.REJECTED]
    assert [str(e.reply) for e in rejected] == [
        "554 5.6.0 Message MIME structure exceeds the filter's limits"
    ] * 2
    assert rejected[0].reason == "rejected by filter deep: MIME nesting deeper than 30"
    assert [stage for stage, _ in bus.stages] == [Stage.SUBMIT]  # the DSN


def test_decisions_are_counted_by_filter_and_verdict() -> None:
    import asyncio

    before = sample("postline_filter_decisions_total", {"filter": "answer", "verdict": "discard"})
    handler, _ = run(Decision.discard("x"))
    asyncio.run(handler(delivery(datetime.now(UTC))))
    after = sample("postline_filter_decisions_total", {"filter": "answer", "verdict": "discard"})
    assert after == before + 1


def test_plan_positions_follow_the_time_since_arrival() -> None:
    arrived = datetime(2026, 3, 4, tzinfo=UTC)
    steps = [plan_defer(SCHEDULE, arrived, arrived + timedelta(seconds=s)) for s in (0, 61, 361)]
    assert [(p.tier, p.step) for p in steps if p] == [("1m", 0), ("5m", 1), ("30m", 2)]
    assert plan_defer(SCHEDULE, arrived, arrived + timedelta(seconds=2161)) is None


def test_the_schedule_must_use_the_topologys_tiers() -> None:
    assert default_schedule(("5m", "1m", "2h")) == (60.0, 300.0, 7200.0)
    assert checked_schedule(None, ("1m", "5m")) == (60.0, 300.0)
    with pytest.raises(ValueError, match="10m is not a retry tier; the tiers are 1m, 5m"):
        checked_schedule((60.0, 600.0), ("1m", "5m"))


def test_a_defer_schedule_without_a_tier_stops_the_service_naming_the_key() -> None:
    from postline.app.settings import Settings, context_for
    from postline.filter.main import defer_schedule
    from postline.settings import ConfigError

    loaded = Settings.model_validate(
        {"filter": {"defer_schedule": "1m,7m"}, "delivery": {"retry_schedule": "1m,5m"}}
    )
    with pytest.raises(ConfigError, match=r"^invalid configuration: filter.defer_schedule: "):
        defer_schedule(loaded.filter, context_for(loaded))
