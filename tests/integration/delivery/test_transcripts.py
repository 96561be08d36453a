"""Every session's dialogue becomes a conversation event: commands and replies, never the body."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import MxFor, Routed, StartDelivery
from tests.integration.delivery.harness import sink_mx
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration

BODY = b"Subject: private\r\n\r\nThe password is hunter2.\r\n"


async def test_transcript_records_the_dialogue_without_the_body(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed()
    envelope = await harness.send(["ok@x.test", "permfail@x.test"], body=BODY)
    await harness.flush(1)
    [talk] = harness.of(EventKind.CONVERSATION)
    assert talk.message_id == envelope.message_id
    assert talk.session_id and len(talk.session_id) >= 8
    assert talk.mx == sink_mx(sink.port)
    assert talk.rcpt_to == ("ok@x.test", "permfail@x.test")
    assert talk.attempt == 1
    lines = talk.transcript or []
    assert lines[0] == f"connect to mx.x.test[127.0.0.1]:{sink.port}"
    assert lines[1].startswith("< 220 ")
    assert "> EHLO relay.test" in lines
    assert "> MAIL FROM:<sender@example.org> SIZE=" + str(len(BODY)) in lines
    assert "> RCPT TO:<ok@x.test>" in lines
    assert "< 550 5.1.1 No such user here" in lines
    assert f"> DATA ({len(BODY)} bytes of message not logged)" in lines
    assert lines[-1] == "< 250 2.0.0 Ok: stored"
    assert all("hunter2" not in line and "private" not in line for line in lines)


async def test_each_failed_connection_gets_its_own_transcript(
    start_delivery: StartDelivery, mx_for: MxFor, sink: SmtpSink
) -> None:
    mx_for("x.test", host="down.x.test", address="127.0.0.3", preference=10)
    mx_for("x.test", preference=20)  # the sink: tried after the host that is down
    harness = await start_delivery()
    await harness.send(["ok@x.test"])
    await harness.flush(1)
    down, up = harness.of(EventKind.CONVERSATION)
    assert down.mx is not None and down.mx.name == "down.x.test"
    assert down.session_id != up.session_id
    assert any(line.startswith("failed: 451 4.4.1") for line in down.transcript or [])
