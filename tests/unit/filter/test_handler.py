"""The filter handler: one time budget per message, bounded parsing, nothing blocks the loop.

The bus is a recording fake: these tests are about what the handler decides,
not about RabbitMQ (tests/integration/filter covers that).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import cast

import pytest
from prometheus_client import REGISTRY

from postline.bus import Bus, Delivery
from postline.filter import message as message_module
from postline.filter.api import Decision
from postline.filter.chain import Chain, FilterTimeout
from postline.filter.handler import FilterHandler
from postline.filter.message import DEFAULT_LIMITS as DEFAULT
from postline.filter.message import FilterMessage, HeaderLimits
from postline.models import ENVELOPE_HEADER, Envelope, Event, EventKind
from postline.topology import Stage

ENVELOPE = Envelope(message_id="4Q8ZT1K2M7XHBN3C", mail_from="a@x.test", rcpt_to=("b@y.test",))
LARGE_BODY = b"a line of a large body\r\n" * 40_000  # ~1 MB


class RecordingBus:
    """What the handler publishes: events, and (stage, body) pairs."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.stages: list[tuple[Stage, bytes]] = []

    async def publish_events(self, events: list[Event]) -> None:
        self.events.extend(events)

    async def publish_stage(self, stage: Stage, body: bytes, envelope: Envelope) -> None:
        self.stages.append((stage, body))


class Nap:
    """Sleeps ``seconds``, then has no objection."""

    name = "nap"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def apply(self, message: FilterMessage) -> Decision:
        await asyncio.sleep(self.seconds)
        return Decision.proceed()


def handler(chain: Chain, limits: HeaderLimits | None = None) -> tuple[FilterHandler, RecordingBus]:
    bus = RecordingBus()
    made = FilterHandler(
        chain, cast(Bus, bus), reporting_mta="relay.test", limits=limits or DEFAULT
    )
    return made, bus


def delivery(body: bytes) -> Delivery:
    return Delivery(
        body=body,
        headers={ENVELOPE_HEADER: ENVELOPE.to_header()},
        message_id=ENVELOPE.message_id,
        routing_key=None,
        redelivered=False,
        delivery_count=0,
    )


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def slow(seconds: float, work: Callable[..., object]) -> Callable[..., object]:
    """``work``, then ``seconds`` of blocking sleep if it succeeded (heavy work, to the loop)."""

    def slowed(*args: object, **kwargs: object) -> object:
        result = work(*args, **kwargs)
        time.sleep(seconds)
        return result

    return slowed


async def longest_stall(work: Awaitable[object]) -> float:
    """Run ``work`` while a ticker sleeps 10 ms at a time; the longest gap between ticks."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    try:
        await work
    finally:
        done.set()
        await ticker
    return max(gaps)


@pytest.mark.parametrize(
    "data",
    [
        b"".join(b"X-N%d: v\r\n" % n for n in range(200)) + b"\r\nbody\r\n",
        b"Subject: x\r\n" + b" a\r\n" * 100_000 + b"\r\nbody\r\n",
    ],
    ids=["small-inline", "large-in-a-thread"],
)
async def test_header_section_over_the_filter_limit_is_rejected_with_554_5_6_0(
    data: bytes,
) -> None:
    run, bus = handler(Chain([Nap(0)], 5), limits=HeaderLimits(max_size=4096, max_lines=100))
    rejected_before = sample("postline_filter_messages_total", {"verdict": "rejected"})
    await run(delivery(data))
    [rejected] = [e for e in bus.events if e.kind is EventKind.REJECTED]
    assert rejected.recipient == "b@y.test" and rejected.reply is not None
    assert (rejected.reply.code, rejected.reply.enhanced) == (554, "5.6.0")
    assert rejected.reason is not None and "header section of more than" in rejected.reason
    assert [stage for stage, _ in bus.stages] == [Stage.SUBMIT]  # the DSN, nothing to deliver
    assert any(e.kind is EventKind.DSN_SENT for e in bus.events)
    assert sample("postline_filter_messages_total", {"verdict": "rejected"}) == rejected_before + 1


async def test_filter_timeout_is_one_budget_for_all_filters_of_a_message() -> None:
    run, bus = handler(Chain([Nap(0.3), Nap(0.3)], timeout=0.45))
    observed_before = sample("postline_filter_duration_seconds_count", {"filter": "nap"})
    timeouts_before = sample("postline_filter_messages_total", {"verdict": "timeout"})
    with pytest.raises(FilterTimeout, match=r"filter nap ran past the message's 0\.45s"):
        await asyncio.wait_for(run(delivery(b"Subject: s\r\n\r\nbody\r\n")), 5)
    assert bus.stages == [] and bus.events == []
    assert sample("postline_filter_messages_total", {"verdict": "timeout"}) == timeouts_before + 1
    assert sample("postline_filter_duration_seconds_count", {"filter": "nap"}) == (
        observed_before + 2
    )


async def test_filter_timeout_covers_parsing_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(message_module, "split_message", slow(1.0, message_module.split_message))
    run, bus = handler(Chain([Nap(0)], timeout=0.2))
    started = time.perf_counter()
    with pytest.raises(FilterTimeout, match="parsing the message ran past"):
        await asyncio.wait_for(run(delivery(b"Subject: s\r\n\r\n" + LARGE_BODY)), 5)
    assert time.perf_counter() - started < 0.9  # the budget, not the parser, decided
    assert bus.stages == []


async def test_a_large_message_is_parsed_and_reassembled_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(message_module, "split_message", slow(0.3, message_module.split_message))
    monkeypatch.setattr(FilterMessage, "to_bytes", slow(0.3, FilterMessage.to_bytes))
    run, bus = handler(Chain([Nap(0)], timeout=5))
    data = b"Subject: s\r\n\r\n" + LARGE_BODY
    stall = await longest_stall(run(delivery(data)))
    assert stall < 0.15, f"the event loop stalled for {stall:.2f}s"
    assert bus.stages == [(Stage.DELIVER, data)]


async def test_a_small_message_with_many_header_lines_is_parsed_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(message_module, "split_message", slow(0.3, message_module.split_message))
    run, bus = handler(Chain([Nap(0)], timeout=5))
    data = b"".join(b"X-N%d: v\r\n" % n for n in range(5000)) + b"\r\nbody\r\n"
    assert len(data) < 64 * 1024
    stall = await longest_stall(run(delivery(data)))
    assert stall < 0.15, f"the event loop stalled for {stall:.2f}s"
    assert bus.stages == [(Stage.DELIVER, data)]
