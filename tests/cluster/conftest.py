"""The cluster layer: a three-node RabbitMQ cluster and the four services as processes.

Opt-in: these tests run only when ``POSTLINE_CLUSTER_SCALE`` is ``small`` (CI)
or ``full`` (``make test-cluster``), since they start three RabbitMQ nodes and
take minutes; a plain ``pytest`` skips them. Everything listens on loopback:
the nodes on ports of their own (``tests.cluster.rabbit``), the DNS server on
127.0.0.1, the SMTP sink on 127.0.0.2, the services on free ports.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.cluster.rabbit import RabbitCluster, available
from tests.support.dns_server import DnsServer
from tests.support.net import free_port
from tests.support.sink import SmtpSink

SCALE_ENV = "POSTLINE_CLUSTER_SCALE"
SINK_IP = "127.0.0.2"


@dataclass(frozen=True)
class Scale:
    """How much the scenario does: messages accepted per phase (at least), seconds each
    fault lasts (at least), and how many SMTP clients keep the load up."""

    name: str
    per_phase: int
    hold: float
    clients: int


SCALES = {"small": Scale("small", 100, 5.0, 3), "full": Scale("full", 1000, 45.0, 6)}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    scale = os.environ.get(SCALE_ENV)
    for item in items:
        if "cluster" not in item.keywords:
            continue
        if scale not in SCALES:
            item.add_marker(pytest.mark.skip(reason=f"opt-in: set {SCALE_ENV}=small or full"))
        elif not available():
            item.add_marker(pytest.mark.skip(reason="rabbitmq-server is not installed"))


@pytest.fixture(scope="module")
def scale() -> Scale:
    return SCALES[os.environ.get(SCALE_ENV, "small")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    running = RabbitCluster(tmp_path_factory.mktemp("rabbit"), size=3)
    try:
        running.start_all()
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add_mx("ok.test", 10, "mx.ok.test")
        server.add_a("mx.ok.test", SINK_IP)
        yield server


@pytest.fixture(scope="module")
def smtp_port() -> int:
    return free_port(SINK_IP)


@pytest.fixture(scope="module")
def sink(smtp_port: int) -> Iterator[SmtpSink]:
    with SmtpSink(host=SINK_IP, port=smtp_port) as server:
        yield server
