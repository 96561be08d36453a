"""DKIM end to end: signed by the relay's filter, delivered, verified at the sink by dkimpy.

The relay (``postline run``) signs mail From: ``signer.test`` with an RSA and an
Ed25519 key (dual signing); the public keys are published as TXT records by the
test DNS server, which dkimpy's verifier queries. The body has lines that start
with dots, trailing blanks and long runs, so the signatures also prove that
delivery's dot-stuffing and CRLF handling leave the signed bytes intact.
"""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dkim as dkimpy
import dns.exception
import dns.resolver
import pytest

from postline.filter.dkim_keys import generate
from tests.e2e.conftest import relay_sections, running_relay
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.relay import RelayProcess, eventually
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e

DOMAIN = "signer.test"
BODY = (
    "Hello John,\r\n"
    ".a line that starts with a dot\r\n"
    "..and one with two\r\n"
    ".\r\n"
    "trailing blanks   \r\n"
    "\ttabbed\r\n" + "x" * 900 + "\r\n\r\n\r\n"
)


@pytest.fixture(scope="module")
def dkim_relay(
    tmp_path_factory: pytest.TempPathFactory, dns: DnsServer, sink: SmtpSink, smtp_port: int
) -> Iterator[RelayProcess]:
    keys_dir = tmp_path_factory.mktemp("dkim")
    keys = []
    for selector, algorithm in (("rsa2026", "rsa"), ("ed2026", "ed25519")):
        pem, record = generate(algorithm)  # type: ignore[arg-type]
        path = keys_dir / f"{selector}.pem"
        path.write_bytes(pem)
        dns.add_txt(f"{selector}._domainkey.{DOMAIN}", record)
        keys.append({"domain": DOMAIN, "selector": selector, "key_file": str(path)})
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["filter"] = {"chain": ["headers", "dkim"], "dkim": {"keys": keys}}
    with running_relay(tmp_path_factory.mktemp("relay"), sections) as process:
        yield process


def dns_lookup(server: DnsServer) -> Callable[..., bytes]:
    """dkimpy's ``dnsfunc``: TXT records from the test DNS server, over the wire."""
    resolver = _resolver(server)

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        try:
            answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
        except dns.exception.DNSException:
            return b""
        return b"".join(b"".join(record.strings) for record in answer)

    return lookup


def _resolver(server: DnsServer) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server.host]
    resolver.port = server.port
    return resolver


def submit(relay: RelayProcess, test_id: str, mail_from: str = f"mary@{DOMAIN}") -> None:
    data = (
        f"From: Mary <{mail_from}>\r\nTo: john@ok.test\r\nSubject: signed {test_id}\r\n"
        f"X-Test-Id: {test_id}\r\n\r\n{BODY}"
    )
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10) as client:
        client.ehlo("client.test")
        refused = client.sendmail(mail_from, ["john@ok.test"], data.encode())
    assert refused == {}


def received(sink: SmtpSink, test_id: str) -> bytes:
    def found() -> list[bytes]:
        return [m.data for m in list(sink.messages) if f"X-Test-Id: {test_id}".encode() in m.data]

    eventually(found, 30, "the signed message at the sink")
    [data] = found()
    return data


def verifies(data: bytes, lookup: Callable[..., bytes], index: int) -> bool:
    try:
        return bool(dkimpy.DKIM(data).verify(idx=index, dnsfunc=lookup))
    except dkimpy.DKIMException:
        return False


def test_rsa_and_ed25519_signatures_verify_at_the_sink_and_break_when_the_body_changes(
    dkim_relay: RelayProcess, sink: SmtpSink, dns: DnsServer
) -> None:
    test_id = uuid.uuid4().hex
    submit(dkim_relay, test_id)
    data = received(sink, test_id)
    lookup = dns_lookup(dns)
    header = data.split(b"\r\n\r\n", 1)[0]
    assert header.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256" in header and b"a=ed25519-sha256" in header
    assert verifies(data, lookup, 0) and verifies(data, lookup, 1)
    assert b"\r\n.a line that starts with a dot\r\n..and one with two\r\n.\r\n" in data
    tampered = data.replace(b"Hello John,", b"Hello Jane,")
    assert not verifies(tampered, lookup, 0) and not verifies(tampered, lookup, 1)
    assert {("rsa2026", "TXT"), ("ed2026", "TXT")} <= {
        (name.split(".")[0], kind) for name, kind in dns.queries
    }


def test_mail_from_a_domain_without_a_key_arrives_unsigned_and_is_counted(
    dkim_relay: RelayProcess, sink: SmtpSink
) -> None:
    before = dkim_relay.metric_value(
        "postline_filter_dkim_messages_total", {"result": "unsigned"}, service="filter"
    )
    test_id = uuid.uuid4().hex
    submit(dkim_relay, test_id, mail_from="bob@unsigned.test")
    assert b"DKIM-Signature:" not in received(sink, test_id)
    after = dkim_relay.metric_value(
        "postline_filter_dkim_messages_total", {"result": "unsigned"}, service="filter"
    )
    assert after == before + 1


def test_a_rewriting_filter_after_dkim_stops_the_relay_with_one_line(
    tmp_path: Path, dns: DnsServer, smtp_port: int
) -> None:
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["filter"] = {"chain": ["headers", "dkim", "disclaimer"]}
    process = RelayProcess(tmp_path, sections)
    process.start(wait_ready=False)
    assert process.process is not None
    assert process.process.wait(30) == 2
    assert (
        "filter.chain: filter 'disclaimer' changes the message after 'dkim' signed it"
        in process.logs()
    )
