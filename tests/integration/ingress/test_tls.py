"""TLS at ingress: implicit TLS with AUTH, TLS 1.2+, certificate reload, STARTTLS edges."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import ssl
import threading
import warnings
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from prometheus_client import REGISTRY

from postline.ingress.state import Listener
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import PASSWORD
from tests.support.broker import wait_until
from tests.support.certs import client_tls, make_cert

pytestmark = pytest.mark.integration
MESSAGE = b"Subject: tls\r\n\r\nover TLS\r\n"


async def test_implicit_tls_listener_offers_auth_and_queues(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(listen_tls=["127.0.0.1:0"], **tls_settings)
    smtp = aiosmtplib.SMTP(
        hostname=ingress.implicit.host,
        port=ingress.implicit.port,
        use_tls=True,
        tls_context=client_tls(),
        source_address=("127.0.0.5", 0),
    )
    await smtp.connect()
    await smtp.ehlo()
    assert smtp.supports_extension("auth")
    assert not smtp.supports_extension("starttls")
    await smtp.login("alice", PASSWORD)
    errors, reply = await smtp.sendmail("alice@example.org", ["x@example.net"], MESSAGE)
    await smtp.quit()
    assert errors == {} and reply.startswith("2.0.0 Ok: queued as")
    [(_, envelope)] = await ingress.submitted()
    assert envelope.tls and envelope.auth_user == "alice"


def _tls11_client() -> ssl.SSLContext:
    context = client_tls()
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def _permissive_server_accepts_tls11(cert: Path, key: Path) -> bool:
    """Control: this machine's OpenSSL can speak TLS 1.1 at all (else the test proves nothing)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server.minimum_version = ssl.TLSVersion.TLSv1
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        conn, _ = listener.accept()
        try:
            server.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            _tls11_client().wrap_socket(raw) as tls,
        ):
            return tls.version() == "TLSv1.1"
    except (ssl.SSLError, OSError):
        return False
    finally:
        thread.join(5)
        listener.close()


async def test_tls_below_1_2_is_refused_on_both_listeners(
    start_ingress: StartIngress, tls_settings: dict[str, Any], cert_pair: tuple[Path, Path]
) -> None:
    if not await asyncio.to_thread(_permissive_server_accepts_tls11, *cert_pair):
        pytest.skip("this OpenSSL cannot negotiate TLS 1.1 at all")
    ingress = await start_ingress(listen_tls=["127.0.0.1:0"], **tls_settings)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await RawClient.connect(*ingress.implicit, tls=_tls11_client())
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await client.starttls(_tls11_client())
    modern = await RawClient.connect(*ingress.implicit, tls=client_tls())
    assert modern.writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    await modern.close()


async def _fingerprint(host: str, port: int) -> str:
    client = await RawClient.connect(host, port, tls=client_tls())
    der = client.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    await client.close()
    return hashlib.sha256(der).hexdigest()


async def test_certificate_is_reloaded_when_its_files_change(
    start_ingress: StartIngress, tls_settings: dict[str, Any], tmp_path: Path
) -> None:
    live = tmp_path / "live"
    cert, key = make_cert(live, "old.mx.test")
    settings = {**tls_settings, "tls_cert": str(cert), "tls_key": str(key)}
    ingress = await start_ingress(
        listen_tls=["127.0.0.1:0"], tls_reload_interval="0.1s", **settings
    )
    before = await _fingerprint(*ingress.implicit)
    session = await RawClient.connect(*ingress.implicit, tls=client_tls())
    await session.ehlo()

    new_cert, new_key = make_cert(tmp_path / "new", "new.mx.test")
    shutil.copy(new_key, key)
    shutil.copy(new_cert, cert)
    expected = hashlib.sha256(ssl.PEM_cert_to_DER_cert(new_cert.read_text())).hexdigest()

    async def rotated() -> bool:
        return await _fingerprint(*ingress.implicit) == expected

    await wait_until(rotated, 10, "the new certificate to be served")
    assert before != expected
    assert (await session.command("NOOP")).code == 250, "open sessions keep working"
    await session.close()


async def test_broken_certificate_files_keep_the_previous_certificate(
    start_ingress: StartIngress, tls_settings: dict[str, Any], tmp_path: Path
) -> None:
    cert, key = make_cert(tmp_path / "live")
    settings = {**tls_settings, "tls_cert": str(cert), "tls_key": str(key)}
    ingress = await start_ingress(listen_tls=["127.0.0.1:0"], **settings)
    before = await _fingerprint(*ingress.implicit)
    failed = REGISTRY.get_sample_value("postline_ingress_tls_reloads_total", {"result": "failed"})
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    tls = ingress.service.shared.tls if ingress.service.shared else None
    assert tls is not None
    assert not await tls.reload_if_changed()
    after = REGISTRY.get_sample_value("postline_ingress_tls_reloads_total", {"result": "failed"})
    assert (after or 0) == (failed or 0) + 1
    assert await _fingerprint(*ingress.implicit) == before


async def test_commands_injected_with_starttls_are_discarded(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    await client.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\nNOOP\r\n")
    assert (await client.reply()).code == 220
    await client.writer.start_tls(client_tls(), server_hostname="")
    reply = await client.command("EHLO after.test")
    assert reply.code == 250 and reply.lines[0] == "mx.test", reply
    assert (await client.command("RCPT TO:<bob@example.net>")).code == 503, "no MAIL survived"
    await client.close()


async def test_starttls_edge_replies(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(listen_tls=["127.0.0.1:0"], **tls_settings)
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("STARTTLS now")).text.startswith("501 5.5.4")
    await client.starttls(client_tls())
    assert (await client.command("MAIL FROM:<a@example.org>")).text.startswith("503 5.5.1"), (
        "EHLO is required again after STARTTLS"
    )
    ehlo = await client.ehlo()
    assert "STARTTLS" not in ehlo.lines and "AUTH PLAIN LOGIN" in ehlo.lines
    assert (await client.command("STARTTLS")).text == "503 5.5.1 TLS already active"
    await client.close()
    implicit = await RawClient.connect(*ingress.implicit, tls=client_tls())
    await implicit.ehlo()
    assert (await implicit.command("STARTTLS")).text == "503 5.5.1 TLS already active"
    await implicit.close()
    assert ingress.service.addresses[Listener.IMPLICIT_TLS]


async def test_without_a_certificate_starttls_is_neither_offered_nor_possible(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    assert "STARTTLS" not in (await client.ehlo()).lines
    assert (await client.command("STARTTLS")).text == "454 4.7.0 TLS not available"
    await client.close()
