"""tls_policy: opportunistic tolerates self-signed certificates; verify and required insist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postline.models import Event, EventKind, Peer
from tests.integration.delivery.conftest import Routed
from tests.support.certs import make_cert
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration
DOMAINS = ("x.test", "bank.test")  # one MX for both


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return make_cert(tmp_path, "mx.x.test")


@pytest.fixture
def tls_sink(smtp_port: int, cert: tuple[Path, Path]) -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", smtp_port, tls_cert=cert[0], tls_key=cert[1]) as server:
        yield server


def transcript(events: list[Event]) -> str:
    return "\n".join(line for e in events for line in e.transcript or [])


async def test_opportunistic_tls_accepts_a_self_signed_certificate(
    routed: Routed, tls_sink: SmtpSink
) -> None:
    harness = await routed(*DOMAINS)  # tls_policy defaults to opportunistic
    await harness.send(["alice@x.test"])
    await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    [received] = tls_sink.wait_for(1, 5)
    assert received.tls
    text = transcript(harness.of(EventKind.CONVERSATION))
    assert "> STARTTLS" in text
    assert "certificate unverified" in text


async def test_verify_defers_when_the_certificate_cannot_be_verified(
    routed: Routed, tls_sink: SmtpSink
) -> None:
    harness = await routed(*DOMAINS, tls_policy="verify", retry_schedule="1m")
    await harness.send(["alice@x.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "alice@x.test")
    assert deferred.reply is not None and deferred.reply.enhanced == "4.7.5"
    assert tls_sink.messages == []


async def test_verify_delivers_when_the_certificate_is_trusted_for_the_mx_name(
    routed: Routed, tls_sink: SmtpSink, cert: tuple[Path, Path]
) -> None:
    harness = await routed(*DOMAINS, tls_policy="verify", tls_ca_file=str(cert[0]))
    await harness.send(["alice@x.test"])
    [delivered] = await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert tls_sink.wait_for(1, 5)[0].tls
    assert "certificate verified" in transcript(harness.of(EventKind.CONVERSATION))
    assert delivered.tls is not None and delivered.tls.verified is True


async def test_outcome_and_transcript_events_carry_the_mx_the_session_and_its_tls(
    routed: Routed, tls_sink: SmtpSink
) -> None:
    harness = await routed(*DOMAINS)
    await harness.send(["alice@x.test"])
    await harness.flush(1)
    [delivered] = harness.of(EventKind.DELIVERED, "alice@x.test")
    [talk] = harness.of(EventKind.CONVERSATION)
    assert delivered.mx == Peer(name="mx.x.test", ip="127.0.0.1", port=tls_sink.port)
    assert delivered.session_id is not None and delivered.session_id == talk.session_id
    assert delivered.tls is not None and delivered.tls.version in ("TLSv1.2", "TLSv1.3")
    assert delivered.tls.cipher and delivered.tls.verified is False
    assert (talk.mx, talk.tls) == (delivered.mx, delivered.tls)


async def test_per_domain_required_defers_when_tls_is_not_offered(
    routed: Routed, sink: SmtpSink
) -> None:
    harness = await routed(
        *DOMAINS, tls_domain_policies={"bank.test": "required"}, retry_schedule="1m"
    )
    await harness.send(["alice@bank.test", "bob@x.test"])
    [deferred] = await harness.wait_for(EventKind.DEFERRED, "alice@bank.test")
    assert deferred.reply is not None and deferred.reply.enhanced == "4.7.4"
    await harness.wait_for(EventKind.DELIVERED, "bob@x.test")  # other domains: opportunistic
    assert [m.rcpt_tos for m in sink.messages] == [("bob@x.test",)]


async def test_policy_none_never_starts_tls(routed: Routed, tls_sink: SmtpSink) -> None:
    harness = await routed(*DOMAINS, tls_policy="none")
    await harness.send(["alice@x.test"])
    await harness.wait_for(EventKind.DELIVERED, "alice@x.test")
    assert not tls_sink.wait_for(1, 5)[0].tls
