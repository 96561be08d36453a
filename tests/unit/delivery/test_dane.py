"""DANE verification (RFC 7672 3.1) and the peer chain it reads from the TLS connection."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from postline.delivery.dane import Tlsa, peer_chain, tlsa_name, verify
from tests.support.pki import Issued, TestCa, tlsa

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def issued(ca: TestCa) -> Issued:
    return ca.issue("mx.x.test")


def records(*texts: str) -> list[Tlsa]:
    parsed = [Tlsa.parse(text) for text in texts]
    assert all(parsed)
    return [r for r in parsed if r is not None]


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("mtype", [0, 1, 2])
def test_dane_ee_matches_the_leaf_whatever_its_name(
    issued: Issued, selector: int, mtype: int
) -> None:
    found = verify(
        records(tlsa(3, selector, mtype, issued.leaf)), [issued.leaf], ["other.test"], NOW
    )
    assert found.ok and found.how.startswith("DANE-EE")


def test_dane_ee_ignores_the_dates(issued: Issued) -> None:
    later = NOW + timedelta(days=400)
    assert verify(records(tlsa(3, 1, 1, issued.leaf)), [issued.leaf], [], later).ok


def test_dane_ta_needs_the_chain_to_the_anchor_and_the_name(issued: Issued) -> None:
    anchor = records(tlsa(2, 0, 1, issued.ca))
    chain = [issued.leaf, issued.ca]
    assert verify(anchor, chain, ["mx.x.test"], NOW).how.startswith("DANE-TA")
    assert verify(anchor, chain, ["x.test", "mx.x.test"], NOW).ok  # any reference name
    assert verify(anchor, chain, ["other.test"], NOW).result == "certificate-host-mismatch"
    assert verify(anchor, [issued.leaf], ["mx.x.test"], NOW).result == "certificate-not-trusted"
    later = NOW + timedelta(days=400)
    assert verify(anchor, chain, ["mx.x.test"], later).result == "certificate-expired"


def test_a_record_for_another_certificate_does_not_match(ca: TestCa, issued: Issued) -> None:
    other = ca.issue("other.x.test")
    found = verify(records(tlsa(3, 1, 1, other.leaf)), [issued.leaf, issued.ca], ["mx.x.test"], NOW)
    assert (found.ok, found.result) == (False, "certificate-not-trusted")


def test_pkix_usages_are_unusable_for_smtp(issued: Issued) -> None:
    unusable = records(tlsa(1, 1, 1, issued.leaf), tlsa(0, 0, 1, issued.ca))
    assert not any(r.usable for r in unusable)
    assert verify(unusable, [issued.leaf], ["mx.x.test"], NOW).result == "tlsa-invalid"


def test_malformed_records_are_not_records() -> None:
    assert Tlsa.parse("3 1 1 zz") is None
    assert Tlsa.parse("3 1") is None
    assert not records("3 1 1 abcd")[0].usable  # SHA-256 data must be 32 bytes


def test_the_tlsa_name_carries_the_port() -> None:
    assert tlsa_name("mx.x.test", 25) == "_25._tcp.mx.x.test"


async def test_peer_chain_returns_the_whole_chain_the_server_sent(
    issued: Issued, tmp_path: Path
) -> None:
    """Pins ``SSLObject._sslobj.get_unverified_chain`` (Python < 3.13), which DANE-TA needs."""
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(issued.chain_file, issued.key_file)
    client_tls = ssl.create_default_context()
    client_tls.check_hostname = False
    client_tls.verify_mode = ssl.CERT_NONE

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    async with server:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_tls, server_hostname="mx.x.test"
        )
        chain = peer_chain(writer.get_extra_info("ssl_object"))
        writer.close()
    assert chain == [issued.leaf, issued.ca]
