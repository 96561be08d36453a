"""Helpers the benchmark scripts share (run them from the repository root).

The scripts run as ``.venv/bin/python bench/<name>.py``, so ``bench/`` is
``sys.path[0]`` and ``from common import ...`` finds this module.
"""

from __future__ import annotations

import os
import socket
import statistics
import urllib.error
import urllib.request

import aio_pika

from postline.app.settings import Settings, topology_for
from postline.topology import delete

BROKER = os.environ.get("POSTLINE_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_status(url: str) -> int | None:
    """The HTTP status of a GET of ``url``; None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of ``seconds``, in milliseconds, rounded to 0.1.

    All 0.0 for no values; a single value is every percentile.
    """
    if not seconds:
        return dict.fromkeys(("p50_ms", "p90_ms", "p99_ms", "max_ms"), 0.0)
    samples = seconds if len(seconds) > 1 else seconds * 2
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1000, 1),
        "p90_ms": round(cuts[89] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(max(seconds) * 1000, 1),
    }


async def drop_topology(settings: Settings) -> None:
    """Delete the benchmark namespace's queues and exchanges (retry tiers included)."""
    connection = await aio_pika.connect(settings.broker.url, timeout=10)
    async with connection:
        await delete(connection, topology_for(settings))
