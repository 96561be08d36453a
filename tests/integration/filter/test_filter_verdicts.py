"""Defer, discard, crash and hostile MIME against the real RabbitMQ.

A deferral waits in a retry tier (not requeued at once), comes back to
``submit`` and is filtered again; a message deferred past the schedule, or
crashing the filter every time, is parked while other mail keeps flowing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from postline.filter.api import Decision
from postline.filter.message import FilterMessage
from postline.filter.settings import FilterSettings
from postline.models import Envelope, EventKind, new_message_id
from postline.topology import Stage
from tests.integration.filter.rig import Rig
from tests.support.broker import wait_until

pytestmark = pytest.mark.integration

HERE = "tests.integration.filter.test_filter_verdicts"
MESSAGE = b"From: Mary <mary@company.test>\r\nTo: john@partner.test\r\nSubject: hi\r\n\r\nhello\r\n"
Factory = Callable[..., Awaitable[Rig]]


class DeferTwice:
    """Defers each message the first two times it sees it, then has no objection."""

    name = "defer-twice"
    seen: dict[str, list[float]] = {}

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        times = DeferTwice.seen.setdefault(message.envelope.message_id, [])
        times.append(time.monotonic())
        if len(times) <= 2:
            return Decision.defer("scanner busy")
        return Decision.proceed()


class AlwaysDefer:
    name = "always-defer"

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        return Decision.defer("scanner down")


class CrashOnSubject:
    """Raises for every message whose Subject is ``crash`` (a filter bug a message triggers)."""

    name = "crash-on-subject"

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        if message.headers.get("Subject") == "crash":
            raise RuntimeError("filter bug")
        return Decision.proceed()


class DiscardAll:
    name = "discard-all"

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        return Decision.discard("list is closed")


def fresh(*rcpt_to: str) -> Envelope:
    """An envelope that arrived now (deferral positions count from the arrival)."""
    return Envelope(
        message_id=new_message_id(),
        mail_from="mary@company.test",
        rcpt_to=rcpt_to or ("john@partner.test",),
        client_ip="127.0.0.1",
    )


TIERS = {"retry_schedule": "1s,2s"}  # the topology's tiers: 1s and 2s


async def test_a_deferred_message_waits_in_the_retry_tiers_and_then_passes(
    rig_factory: Factory,
) -> None:
    """Before: a DEFER was nacked and requeued at once, and parked after delivery_limit (1)."""
    DeferTwice.seen.clear()
    rig = await rig_factory(chain=[f"{HERE}:DeferTwice", "headers"], delivery=TIERS)
    env = fresh()
    await rig.probe.publish_stage(Stage.SUBMIT, MESSAGE, env)
    await wait_until(lambda: len(rig.delivered) == 1, 20, "the message on deliver")
    first, second, third = DeferTwice.seen[env.message_id]
    assert second - first >= 0.9 and third - second >= 1.9  # the 1s tier, then the 2s tier
    assert rig.delivered[0].envelope() == env
    deferred = rig.of_kind(EventKind.DEFERRED)
    assert [e.reason for e in deferred] == [
        "deferred by filter defer-twice (deferral 1): scanner busy",
        "deferred by filter defer-twice (deferral 2): scanner busy",
    ]
    assert all(str(e.reply) == "451 4.7.0 Message deferred by content filter" for e in deferred)
    assert await rig.depth(rig.probe.topology.parked_queue) == 0


async def test_a_message_deferred_past_the_schedule_is_parked_with_a_parked_event(
    rig_factory: Factory,
) -> None:
    rig = await rig_factory(
        chain=[f"{HERE}:AlwaysDefer"], delivery=TIERS, defer_schedule="1s", broker={}
    )
    env = fresh()
    await rig.probe.publish_stage(Stage.SUBMIT, MESSAGE, env)
    parked = rig.probe.topology.parked_queue
    await wait_until(lambda: rig.of_kind(EventKind.PARKED), 20, "the parked event")
    [event] = rig.of_kind(EventKind.PARKED)
    assert event.message_id == env.message_id
    assert "scanner down (defer_schedule 1s used up)" in (event.reason or "")
    assert len(rig.of_kind(EventKind.DEFERRED)) == 1
    await wait_until(lambda: _depth(rig, parked, 1), 10, "the message in parked")
    assert rig.delivered == []


async def test_a_message_that_crashes_the_filter_every_time_is_parked_while_others_pass(
    rig_factory: Factory,
) -> None:
    rig = await rig_factory(chain=[f"{HERE}:CrashOnSubject"], broker={"delivery_limit": 2})
    poison = MESSAGE.replace(b"Subject: hi", b"Subject: crash")
    await rig.probe.publish_stage(Stage.SUBMIT, poison, fresh())
    ordinary = [fresh() for _ in range(5)]
    for env in ordinary:
        await rig.probe.publish_stage(Stage.SUBMIT, MESSAGE, env)
    parked = rig.probe.topology.parked_queue
    await wait_until(lambda: len(rig.delivered) == 5, 20, "the other messages on deliver")
    await wait_until(lambda: _depth(rig, parked, 1), 20, "the poison message in parked")
    assert {d.message_id for d in rig.delivered} == {e.message_id for e in ordinary}


async def test_a_discarded_message_leaves_discarded_events_and_nothing_else(
    rig_factory: Factory,
) -> None:
    rig = await rig_factory(chain=["headers", f"{HERE}:DiscardAll"])
    env = fresh("a@x.test", "b@y.test")
    await rig.probe.publish_stage(Stage.SUBMIT, MESSAGE, env)
    await wait_until(lambda: len(rig.of_kind(EventKind.DISCARDED)) == 2, 15, "discarded events")
    assert {e.recipient for e in rig.of_kind(EventKind.DISCARDED)} == {"a@x.test", "b@y.test"}
    await rig.stop_service()
    assert await rig.depth(Stage.SUBMIT) == 0  # no DSN was queued, the message is gone
    assert rig.delivered == [] and rig.of_kind(EventKind.DSN_SENT) == []


def nested_multiparts(depth: int) -> bytes:
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(depth)
    )
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth + 1)))
    return (
        b"From: mary@company.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n" + opening + closing
    )


HOSTILE = {
    "nested": nested_multiparts(1000),
    "huge-part-header": (
        b"From: mary@company.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        + b"X-Junk: "
        + b"a" * (20 * 1024 * 1024)
        + b"\r\n\r\nbody\r\n--b--\r\n"
    ),
}
BROKEN_ENCODINGS = (
    b"From: mary@company.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b"
    b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
    b"quoted-printable\r\n\r\nbroken =ZZ qp =\r\n=C3\r\n--b\r\nContent-Type: application/pdf; "
    b"name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBER!!i0x*Lj==cK===\r\n--b--\r\n"
)


async def test_hostile_mime_is_refused_and_broken_encodings_pass_while_other_mail_flows(
    rig_factory: Factory,
) -> None:
    text_rule = {"on": "text", "contains": "never", "reason": "r"}
    rig = await rig_factory(
        chain=["headers", "attachments", "rules"], timeout="20s", rules={"rule": [text_rule]}
    )
    hostile = {name: fresh() for name in HOSTILE}
    for name, env in hostile.items():
        await rig.probe.publish_stage(Stage.SUBMIT, HOSTILE[name], env)
    broken, ordinary = fresh(), fresh()
    await rig.probe.publish_stage(Stage.SUBMIT, BROKEN_ENCODINGS, broken)
    await rig.probe.publish_stage(Stage.SUBMIT, MESSAGE, ordinary)
    passed = {broken.message_id, ordinary.message_id}

    def delivered() -> set[str | None]:
        return {d.message_id for d in rig.delivered}

    await wait_until(lambda: passed <= delivered(), 30, "the ordinary and the broken message")
    refused = {env.message_id for env in hostile.values()}
    await wait_until(
        lambda: refused <= {e.message_id for e in rig.of_kind(EventKind.REJECTED)}, 30, "refusals"
    )
    reasons = {e.message_id: e.reason for e in rig.of_kind(EventKind.REJECTED)}
    assert reasons == {
        hostile["nested"].message_id: "rejected by filter attachments: MIME nesting deeper than 30",
        hostile["huge-part-header"].message_id: (
            "rejected by filter attachments: MIME part header of more than 65536 bytes"
        ),
    }
    assert all(str(e.reply).startswith("554 5.6.0") for e in rig.of_kind(EventKind.REJECTED))
    assert not refused & delivered()  # only their DSNs (other ids) went on to deliver


async def _depth(rig: Rig, queue: str, depth: int) -> bool:
    await asyncio.sleep(0)
    return await rig.depth(queue) == depth
