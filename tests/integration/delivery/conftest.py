"""Fixtures for delivery integration tests: DNS server, sinks, and the service harness.

* ``dns``, ``smtp_port``, ``sink``: a test DNS server, the one SMTP port of the
  test (``[delivery] smtp_port`` is global) and a sink on 127.0.0.1 at it.
* ``mx_for(*domains, host=, address=, preference=)``: publish ``host``
  (``mx.x.test``) as an MX of each domain (preference 10), with the A record
  ``address`` (``127.0.0.1``, where ``sink`` and the scripted remotes listen).
* ``start_delivery(**overrides)``: a running ``DeliveryHarness`` with those
  ``[delivery]`` keys.
* ``routed(*domains, **overrides)``: both at once, the usual set-up: the
  domains (``x.test`` unless named) are routed to ``mx.x.test`` on 127.0.0.1,
  then delivery starts. Events name that host as ``sink_mx(port)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from postline.app.settings import Settings
from tests.integration.delivery.harness import (
    SINK_ADDRESS,
    SINK_MX,
    DeliveryHarness,
    delivery_section,
)
from tests.support.dns_server import DnsServer
from tests.support.net import free_port
from tests.support.sink import SmtpSink

StartDelivery = Callable[..., Awaitable[DeliveryHarness]]
Routed = Callable[..., Awaitable[DeliveryHarness]]
MxFor = Callable[..., None]


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
def mx_for(dns: DnsServer) -> MxFor:
    """``mx_for(*domains, host=, address=, preference=)`` (module docstring)."""

    def publish(
        *domains: str, host: str = SINK_MX, address: str = SINK_ADDRESS, preference: int = 10
    ) -> None:
        for domain in domains:
            dns.add_mx(domain, preference, host)
        dns.add_a(host, address)

    return publish


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


@pytest.fixture
def routed(mx_for: MxFor, start_delivery: StartDelivery) -> Routed:
    """``await routed(*domains, **overrides)`` (module docstring)."""

    async def start(*domains: str, **overrides: Any) -> DeliveryHarness:
        mx_for(*(domains or ("x.test",)))
        return await start_delivery(**overrides)

    return start
