"""Fixtures for ingress integration tests (real RabbitMQ, ingress on the test's loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from postline.app.settings import Settings, context_for
from postline.ingress.service import IngressService
from postline.lifecycle import Supervisor
from tests.integration.ingress.support import Running, make_users
from tests.support.broker import make_settings
from tests.support.certs import make_cert

StartIngress = Callable[..., Awaitable[Running]]


@pytest.fixture(scope="session")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_users(tmp_path_factory.mktemp("users") / "users.toml")


@pytest.fixture
def tls_settings(cert_pair: tuple[Path, Path], users_file: Path) -> dict[str, Any]:
    """Ingress keys for STARTTLS + AUTH with the session's certificate and users."""
    cert, key = cert_pair
    return {"tls_cert": str(cert), "tls_key": str(key), "users_file": str(users_file),
            "auth_failure_delay": "0.01s"}  # fmt: skip


@pytest.fixture
async def start_ingress(
    broker_settings: Callable[..., Settings], namespace: str
) -> AsyncIterator[StartIngress]:
    """``await start_ingress(relay_networks=[...], ...)`` -> a running ingress.

    ``broker={...}`` overrides broker keys (e.g. an unreachable URL); such
    settings are not registered for topology clean-up, since nothing can be
    declared on a broker that is not there.
    """
    started: list[IngressService] = []

    async def start(connect: bool = True, broker: dict[str, Any] | None = None,
                    **ingress: Any) -> Running:  # fmt: skip
        keys: dict[str, Any] = {"hostname": "mx.test", "relay_networks": ["127.0.0.1/32"]}
        keys.update(ingress)
        if broker:
            settings = make_settings(namespace, ingress=keys, broker=broker)
        else:
            settings = broker_settings(ingress=keys)
        service = IngressService(settings.ingress, context_for(settings), Supervisor())
        started.append(service)
        await service.start()
        if connect:
            assert await service.bus.wait_connected(10), "ingress did not reach the broker"
        return Running(service, settings)

    yield start
    for service in started:
        await service.drain(1)
        await service.close()
