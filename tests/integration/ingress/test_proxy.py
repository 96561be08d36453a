"""PROXY protocol v1/v2: honoured only from trusted_proxies; the proxied address rules."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from typing import Any

import pytest

from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import Running
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration
PROXY_KEYS: dict[str, Any] = {
    "proxy_protocol": True,
    "trusted_proxies": ["127.0.0.1/32"],
    "relay_networks": ["10.0.0.0/8"],
    "proxy_protocol_timeout": "0.5s",
}
SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v1(client: str, port: int = 40000) -> bytes:
    return f"PROXY TCP4 {client} 192.0.2.25 {port} 587\r\n".encode()


def proxy_v2(client: str | None, port: int = 40000) -> bytes:
    if client is None:  # LOCAL: a health check from the proxy itself
        return SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    body = socket.inet_aton(client) + socket.inet_aton("192.0.2.25") + struct.pack("!HH", port, 587)
    return SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


async def proxied(ingress: Running, header: bytes, source: str = "127.0.0.1") -> RawClient:
    client = await RawClient.connect(*ingress.plain, source=source, greeting=False)
    await client.send(header)
    banner = await client.reply()
    assert banner.code == 220, banner
    return client


async def relay_code(client: RawClient) -> int:
    await client.ehlo()
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    return (await client.command("RCPT TO:<b@example.net>")).code


async def test_proxied_address_drives_relay_policy_and_envelope(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(**PROXY_KEYS)
    client = await proxied(ingress, proxy_v1("10.1.2.3"))
    assert await relay_code(client) == 250
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: via proxy\r\n\r\nx\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    [(_, envelope)] = await ingress.submitted()
    assert envelope.client_ip == "10.1.2.3"

    outsider = await proxied(ingress, proxy_v1("203.0.113.9"))
    assert await relay_code(outsider) == 554, "the proxy's own address must not grant relay"
    await outsider.close()


async def test_proxy_v2_header_and_local_command(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(**PROXY_KEYS)
    client = await proxied(ingress, proxy_v2("10.9.8.7"))
    assert await relay_code(client) == 250
    await client.close()
    health = await proxied(ingress, proxy_v2(None))
    assert await relay_code(health) == 554, "LOCAL keeps the proxy's address (not trusted)"
    await health.close()


async def test_proxy_header_from_an_untrusted_peer_closes_the_connection(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(**PROXY_KEYS)
    client = await RawClient.connect(*ingress.plain, source="127.0.0.5", greeting=False)
    await client.send(proxy_v1("10.1.2.3"))
    assert await client.reader.read() == b"", "no greeting, connection closed"


@pytest.mark.parametrize("first", [b"EHLO client.test\r\n", b"PROXY TCP4 10.1.2.3\r\n", b""])
async def test_missing_or_malformed_header_from_a_proxy_closes_the_connection(
    start_ingress: StartIngress, first: bytes
) -> None:
    ingress = await start_ingress(**PROXY_KEYS)
    client = await RawClient.connect(*ingress.plain, greeting=False)
    await client.send(first)
    assert await asyncio.wait_for(client.reader.read(), 5) == b""


async def test_proxy_command_without_proxy_protocol_is_refused(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(relay_networks=["10.0.0.0/8"])
    client = await RawClient.connect(*ingress.plain)
    reply = await client.command("PROXY TCP4 10.1.2.3 192.0.2.25 40000 587")
    assert reply.text == "554 5.7.0 PROXY header not accepted here"
    assert await client.closed()


async def test_per_ip_session_limit_counts_proxied_addresses(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(max_sessions_per_ip=1, **PROXY_KEYS)
    first = await proxied(ingress, proxy_v1("10.0.0.1"))
    second = await proxied(ingress, proxy_v1("10.0.0.2"))
    third = await RawClient.connect(*ingress.plain, greeting=False)
    await third.send(proxy_v1("10.0.0.1"))
    assert (await third.reply()).text.startswith("421 4.7.0")
    for client in (first, second, third):
        await client.close()


def _pump(sock: socket.socket, bio: tuple[ssl.MemoryBIO, ssl.MemoryBIO], step: Any) -> Any:
    """Run one step of a memory-BIO TLS client over ``sock`` until it needs no more input."""
    incoming, outgoing = bio
    while True:
        try:
            result = step()
        except ssl.SSLWantReadError:
            if outgoing.pending:
                sock.sendall(outgoing.read())
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server") from None
            incoming.write(data)
            continue
        if outgoing.pending:
            sock.sendall(outgoing.read())
        return result


def _tls_greeting_with_header_in_the_same_segment(host: str, port: int, header: bytes) -> str:
    """PROXY header and TLS ClientHello in one send(), as a proxy may forward them."""
    bio = (ssl.MemoryBIO(), ssl.MemoryBIO())
    tls = client_tls().wrap_bio(*bio)
    with socket.create_connection((host, port), timeout=5) as sock:
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.do_handshake()
        sock.sendall(header + bio[1].read())
        _pump(sock, bio, tls.do_handshake)
        return str(_pump(sock, bio, lambda: tls.read(4096)).decode())


async def test_proxy_header_before_implicit_tls(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(listen_tls=["127.0.0.1:0"], **PROXY_KEYS, **tls_settings)
    greeting = await asyncio.to_thread(
        _tls_greeting_with_header_in_the_same_segment, *ingress.implicit, proxy_v2("10.4.4.4")
    )
    assert greeting.startswith("220 mx.test")
    reader, writer = await asyncio.open_connection(*ingress.implicit)
    writer.write(proxy_v1("10.5.5.5"))
    await writer.drain()
    await writer.start_tls(client_tls())
    client = RawClient(reader, writer)
    assert (await client.reply()).code == 220
    assert await relay_code(client) == 250
    await client.close()


async def test_ipv4_mapped_proxied_address_is_judged_as_ipv4(start_ingress: StartIngress) -> None:
    ingress = await start_ingress(**PROXY_KEYS)
    header = b"PROXY TCP6 ::ffff:10.1.2.3 2001:db8::25 40000 587\r\n"
    client = await proxied(ingress, header)
    assert await relay_code(client) == 250
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: mapped\r\n\r\nx\r\n.\r\n")
    assert (await client.reply()).code == 250
    await client.close()
    [(_, envelope)] = await ingress.submitted()
    assert envelope.client_ip == "10.1.2.3"
