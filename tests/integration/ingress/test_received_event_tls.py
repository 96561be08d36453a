"""The ``received`` event describes the client's session as data: its id and its TLS."""

from __future__ import annotations

from typing import Any

import aiosmtplib
import pytest

from postline.models import Event, EventKind, TlsInfo
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import Running
from tests.support.broker import wait_until
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration
MESSAGE = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"


async def received_event(ingress: Running) -> Event:
    events: list[Event] = []

    async def arrived() -> bool:
        events.extend(e for e in await ingress.events() if e.kind is EventKind.RECEIVED)
        return bool(events)

    await wait_until(arrived, 10, "the received event")
    [event] = events
    return event


async def test_received_event_carries_the_clients_tls_version_and_cipher(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    host, port = ingress.plain
    client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=True, tls_context=client_tls())
    async with client as smtp:
        ssl_object = smtp.get_transport_info("ssl_object")
        assert ssl_object is not None, "STARTTLS did not happen"
        seen = TlsInfo(version=ssl_object.version(), cipher=ssl_object.cipher()[0])
        await smtp.sendmail("alice@example.org", ["bob@example.net"], MESSAGE)
    event = await received_event(ingress)
    assert event.tls == seen
    assert event.tls.version and event.tls.cipher
    assert event.session_id


async def test_received_event_of_a_plaintext_session_has_no_tls(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress()
    host, port = ingress.plain
    async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False) as smtp:
        await smtp.sendmail("alice@example.org", ["bob@example.net"], MESSAGE)
    event = await received_event(ingress)
    assert event.tls is None
    assert event.session_id
