"""Fixtures for delivery integration tests: DNS server, sinks, and the service harness."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from postline.app.settings import Settings
from tests.integration.delivery.harness import DeliveryHarness, delivery_section
from tests.support.dns_server import DnsServer
from tests.support.net import free_port
from tests.support.sink import SmtpSink

StartDelivery = Callable[..., Awaitable[DeliveryHarness]]


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server


@pytest.fixture
def smtp_port() -> int:
    """One port for every sink of a test: ``[delivery] smtp_port`` is global."""
    return free_port("127.0.0.1", "127.0.0.2", "127.0.0.3")


@pytest.fixture
def sink(smtp_port: int) -> Iterator[SmtpSink]:
    with SmtpSink("127.0.0.1", smtp_port) as server:
        yield server


@pytest.fixture
async def start_delivery(
    broker_settings: Callable[..., Settings], dns: DnsServer, smtp_port: int
) -> AsyncIterator[StartDelivery]:
    """``await start_delivery(**delivery_overrides)`` -> a running ``DeliveryHarness``."""
    started: list[DeliveryHarness] = []

    async def start(**overrides: Any) -> DeliveryHarness:
        settings = broker_settings(delivery=delivery_section(dns.address, smtp_port, **overrides))
        harness = DeliveryHarness(settings)
        started.append(harness)
        await harness.start()
        return harness

    yield start
    for harness in started:
        await harness.stop()
