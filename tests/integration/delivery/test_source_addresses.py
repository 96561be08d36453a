"""Source addresses: sessions leave from the configured local address, per sender pool."""

from __future__ import annotations

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
SOURCES = [
    {"address": "127.0.0.2", "helo_name": "out2.relay.test"},
    {"address": "127.0.0.3", "helo_name": "news.relay.test"},
]
POOLS = [
    {"name": "news", "sender_domains": ["news.example.org"], "addresses": {"127.0.0.3": 1}},
    {"name": "mailer", "auth_users": ["mailer"], "addresses": {"127.0.0.3": 2}},
]


def peer_ip(received_peer: str) -> str:
    return received_peer.rpartition(":")[0]


async def test_the_sink_sees_the_configured_source_address_as_the_peer(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(source_addresses=SOURCES[:1])
    await harness.send(["alice@x.test"])
    await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    [received] = sink.wait_for(1, 5)
    assert peer_ip(received.peer) == "127.0.0.2"
    lines = [line for e in harness.of(EventKind.CONVERSATION) for line in e.transcript or []]
    assert f"connect to mx.x.test[127.0.0.1]:{sink.port} from 127.0.0.2" in lines
    assert "> EHLO out2.relay.test" in lines


async def test_pools_choose_the_source_by_sender_domain_or_auth_user(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(source_addresses=SOURCES, pools=POOLS)
    await harness.send(["a@x.test"], mail_from="list@news.example.org")
    await harness.send(["b@x.test"], mail_from="someone@example.org", auth_user="mailer")
    await harness.send(["c@x.test"], mail_from="someone@example.org")
    for recipient in ("a@x.test", "b@x.test", "c@x.test"):
        await harness.wait_for(EventKind.DELIVERED, recipient)
    peers = {m.rcpt_tos[0]: peer_ip(m.peer) for m in sink.wait_for(3, 5)}
    # the default pool is every source address no pool names
    assert peers == {"a@x.test": "127.0.0.3", "b@x.test": "127.0.0.3", "c@x.test": "127.0.0.2"}
