"""Helpers the benchmark scripts share (run them from the repository root)."""

from __future__ import annotations

import socket
import statistics

import aio_pika

from postline.settings import Settings
from postline.topology import delete, topology_for


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``seconds``, in milliseconds, rounded to 0.1."""
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1000, 1),
        "p90_ms": round(cuts[89] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


async def drop_topology(settings: Settings) -> None:
    """Delete the benchmark namespace's queues and exchanges."""
    connection = await aio_pika.connect(settings.broker.url, timeout=10)
    async with connection:
        await delete(connection, topology_for(settings))
