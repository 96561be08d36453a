"""deny_private_destinations refuses MX targets on inside addresses; routes are exempt."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import MxFor, StartDelivery
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


async def test_mx_on_loopback_is_refused_permanently_with_a_clear_reason(
    start_delivery: StartDelivery, mx_for: MxFor, sink: SmtpSink
) -> None:
    mx_for("evil.test", host="mx.evil.test", address="127.0.0.5")
    harness = await start_delivery(deny_private_destinations=True)
    await harness.send(["victim@evil.test"])
    [bounced] = await harness.wait_for(EventKind.BOUNCED, "victim@evil.test")
    assert bounced.reply is not None
    assert (bounced.reply.code, bounced.reply.enhanced) == (554, "5.4.4")
    assert "mx.evil.test: 127.0.0.5 is a loopback address" in bounced.reply.text
    assert bounced.reason == "no usable route"
    assert sink.attempts == []


async def test_mx_on_the_broker_address_is_refused(
    start_delivery: StartDelivery, mx_for: MxFor, sink: SmtpSink
) -> None:
    mx_for("evil.test", host="mx.evil.test")  # on 127.0.0.1, where the test broker listens
    harness = await start_delivery(deny_private_destinations=True)
    await harness.send(["victim@evil.test"])
    [bounced] = await harness.wait_for(EventKind.BOUNCED, "victim@evil.test")
    assert bounced.reply is not None and "127.0.0.1 is the message broker" in bounced.reply.text
    assert sink.attempts == []


async def test_private_mx_is_skipped_for_a_public_one(
    start_delivery: StartDelivery, mx_for: MxFor, sink: SmtpSink
) -> None:
    mx_for("mixed.test", host="inside.mixed.test", address="10.1.2.3")
    # TEST-NET: non-global, refused as well
    mx_for("mixed.test", host="outside.mixed.test", address="192.0.2.1", preference=20)
    harness = await start_delivery(deny_private_destinations=True)
    await harness.send(["someone@mixed.test"])
    [bounced] = await harness.wait_for(EventKind.BOUNCED, "someone@mixed.test")
    assert bounced.reply is not None and "192.0.2.1" in bounced.reply.text


async def test_routes_are_operator_chosen_and_exempt(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    harness = await start_delivery(
        deny_private_destinations=True, routes={"inside.test": f"[127.0.0.1]:{sink.port}"}
    )
    await harness.send(["someone@inside.test"])
    await harness.wait_for(EventKind.DELIVERED, "someone@inside.test")


async def test_smarthost_is_operator_chosen_and_exempt(
    start_delivery: StartDelivery, sink: SmtpSink
) -> None:
    harness = await start_delivery(
        deny_private_destinations=True, smarthost=f"[127.0.0.1]:{sink.port}"
    )
    await harness.send(["someone@anywhere.test"])
    await harness.wait_for(EventKind.DELIVERED, "someone@anywhere.test")
