"""routes (per-domain next hop) and smarthost (everything via one relay, AUTH only over TLS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postline.models import EventKind, Peer
from tests.integration.delivery.conftest import MxFor, Routed, StartDelivery
from tests.support.certs import make_cert
from tests.support.dns_server import DnsServer
from tests.support.net import free_port
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


@pytest.fixture
def other_sink() -> Iterator[SmtpSink]:
    """A second receiver on another address and port, reachable only through a route."""
    with SmtpSink("127.0.0.2", free_port("127.0.0.2")) as server:
        yield server


async def test_route_sends_a_domain_to_its_next_hop_without_mx_lookup(
    routed: Routed, dns: DnsServer, sink: SmtpSink, other_sink: SmtpSink
) -> None:
    harness = await routed(routes={"Routed.Test": f"[127.0.0.2]:{other_sink.port}"})
    await harness.send(["a@routed.test", "b@x.test"])
    [event] = await harness.wait_for(EventKind.DELIVERED, "a@routed.test")
    await harness.wait_for(EventKind.DELIVERED, "b@x.test")
    assert event.mx == Peer(name="127.0.0.2", ip="127.0.0.2", port=other_sink.port)
    assert [m.rcpt_tos for m in other_sink.wait_for(1, 5)] == [("a@routed.test",)]
    assert [m.rcpt_tos for m in sink.wait_for(1, 5)] == [("b@x.test",)]
    assert not any(name == "routed.test" for name, _ in dns.queries)


async def test_route_without_brackets_uses_the_mx_of_the_hop(
    start_delivery: StartDelivery, mx_for: MxFor, dns: DnsServer, other_sink: SmtpSink
) -> None:
    mx_for("hub.test", host="mx.hub.test", address="127.0.0.2")
    harness = await start_delivery(routes={"routed.test": f"hub.test:{other_sink.port}"})
    await harness.send(["a@routed.test"])
    [event] = await harness.wait_for(EventKind.DELIVERED, "a@routed.test")
    assert event.mx == Peer(name="mx.hub.test", ip="127.0.0.2", port=other_sink.port)
    assert ("hub.test", "MX") in dns.queries


async def test_smarthost_takes_every_domain_without_dns(
    start_delivery: StartDelivery, dns: DnsServer, other_sink: SmtpSink
) -> None:
    harness = await start_delivery(smarthost=f"[127.0.0.2]:{other_sink.port}")
    await harness.send(["a@one.test", "b@two.test"])
    await harness.wait_for(EventKind.DELIVERED, "a@one.test")
    await harness.wait_for(EventKind.DELIVERED, "b@two.test")
    assert sorted(m.rcpt_tos for m in other_sink.wait_for(2, 5)) == [
        ("a@one.test",),
        ("b@two.test",),
    ]
    assert dns.queries == []


@pytest.fixture
def auth_smarthost(tmp_path: Path) -> Iterator[SmtpSink]:
    cert, key = make_cert(tmp_path, "relay.test")
    with SmtpSink(
        "127.0.0.2", free_port("127.0.0.2"), cert, key, users={"postline": "s3cret-pw"}
    ) as server:
        yield server


async def test_smarthost_auth_over_tls_delivers_and_never_logs_the_password(
    start_delivery: StartDelivery, auth_smarthost: SmtpSink
) -> None:
    harness = await start_delivery(
        smarthost=f"[127.0.0.2]:{auth_smarthost.port}",
        smarthost_username="postline",
        smarthost_password="s3cret-pw",
    )
    await harness.send(["a@one.test"])
    await harness.wait_for(EventKind.DELIVERED, "a@one.test")
    [received] = auth_smarthost.wait_for(1, 5)
    assert received.tls
    assert auth_smarthost.auth_logins == ["postline"]
    await harness.flush(1)
    lines = [line for e in harness.of(EventKind.CONVERSATION) for line in e.transcript or []]
    assert "> AUTH (credentials not logged)" in lines
    assert all("s3cret" not in e.to_json().decode() for e in harness.events)


@pytest.mark.parametrize(
    ("smarthost", "password", "words"),
    [
        # the smarthost refuses the password
        pytest.param("auth_smarthost", "wrong", "535", id="auth-failure-defers"),
        # the smarthost offers no TLS, so the credentials are never sent
        pytest.param("other_sink", "s3cret-pw", "unencrypted", id="never-without-tls"),
    ],
)
async def test_smarthost_that_does_not_authenticate_us_defers_without_sending(
    start_delivery: StartDelivery,
    request: pytest.FixtureRequest,
    smarthost: str,
    password: str,
    words: str,
) -> None:
    server: SmtpSink = request.getfixturevalue(smarthost)
    harness = await start_delivery(
        smarthost=f"[127.0.0.2]:{server.port}",
        smarthost_username="postline",
        smarthost_password=password,
        retry_schedule="1m",
    )
    await harness.send(["a@one.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "a@one.test")
    assert deferred.reply is not None and deferred.reply.enhanced == "4.7.0"
    assert words in deferred.reply.text
    assert server.messages == []
