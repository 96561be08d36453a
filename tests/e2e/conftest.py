"""End-to-end fixtures: a DNS server, SMTP sinks and the whole relay as one process.

Zone used by the module-scoped relay (all on loopback, sinks on one port):

* ``ok.test``     MX 10 mx.ok.test -> 127.0.0.2 (the sink)
* ``nxdomain.test`` does not exist
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker import delete_topology, new_namespace
from tests.support.dns_server import DnsServer
from tests.support.net import free_port
from tests.support.relay import RelayProcess
from tests.support.sink import SmtpSink

SINK_IP = "127.0.0.2"


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer() as server:
        server.add_mx("ok.test", 10, "mx.ok.test")
        server.add_a("mx.ok.test", SINK_IP)
        server.nxdomain("nxdomain.test")
        yield server


@pytest.fixture(scope="module")
def smtp_port() -> int:
    return free_port(SINK_IP)


@pytest.fixture(scope="module")
def sink(smtp_port: int) -> Iterator[SmtpSink]:
    with SmtpSink(host=SINK_IP, port=smtp_port) as server:
        yield server


def relay_sections(namespace: str, dns: DnsServer, smtp_port: int) -> dict[str, Any]:
    return {
        "broker": {"namespace": namespace, "publish_timeout": "5s"},
        # Load tests submit from one address faster than the default per-IP rate.
        "ingress": {"relay_networks": ["127.0.0.1/32"], "max_messages_per_ip": 0},
        "delivery": {
            "dns_nameservers": [dns.address],
            "smtp_port": smtp_port,
            "retry_schedule": "1s",
            "max_queue_lifetime": "1h",
            "deny_private_destinations": False,
        },
    }


@contextlib.contextmanager
def running_relay(
    workdir: Path, sections: dict[str, Any], wait_ready: bool = True
) -> Iterator[RelayProcess]:
    """A ``postline run`` process; stopped with SIGTERM (exit 0 asserted) and cleaned up after."""
    process = RelayProcess(workdir, sections)
    process.start(wait_ready=wait_ready)
    try:
        yield process
    finally:
        code = process.stop()
        cleanup(process)
        assert code == 0, f"relay exited with {code}:\n{process.logs()[-3000:]}"


@pytest.fixture(scope="module")
def relay(
    tmp_path_factory: pytest.TempPathFactory, dns: DnsServer, sink: SmtpSink, smtp_port: int
) -> Iterator[RelayProcess]:
    """All four services in one ``postline run`` process, in a namespace of their own."""
    sections = relay_sections(new_namespace(), dns, smtp_port)
    with running_relay(tmp_path_factory.mktemp("relay"), sections) as process:
        yield process


def cleanup(process: RelayProcess) -> None:
    """Delete the relay's topology on the test broker, whatever broker its config names
    (a test may point the relay at an unreachable one)."""
    from postline.app.settings import load_settings, topology_for

    settings = load_settings(Path(process.config_path))
    asyncio.run(delete_topology(topology_for(settings)))
