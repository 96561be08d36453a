"""Helpers for tests that use the real RabbitMQ: per-test namespaces and cleanup."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika

from postline.app.settings import Settings, topology_for
from postline.topology import Topology, delete

BROKER_URL = os.environ.get("POSTLINE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")


def new_namespace() -> str:
    """A namespace no other test (or earlier run) uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


def make_settings(namespace: str, **sections: dict[str, Any]) -> Settings:
    """Settings for a test: the real broker, ``namespace``, metrics off, plus ``sections``."""
    data: dict[str, dict[str, Any]] = {
        "broker": {"url": BROKER_URL, "namespace": namespace},
        "ingress": {"listen": ["127.0.0.1:0"], "metrics_listen": None},
        "filter": {"metrics_listen": None},
        "delivery": {"metrics_listen": None},
        "audit": {"metrics_listen": None, "api_listen": None},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Settings.model_validate(data)


async def delete_topology(topology: Topology, url: str = BROKER_URL) -> None:
    """Delete every queue and exchange of ``topology`` (tests leave the broker clean)."""
    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        await delete(connection, topology)


async def delete_namespace_of(settings: Settings) -> None:
    await delete_topology(topology_for(settings), settings.broker.url)


async def wait_until(
    predicate: Callable[[], Awaitable[object]] | Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> None:
    """Poll ``predicate`` (sync or async) until truthy; fail with ``what`` after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def queue_depth(url: str, queue_name: str) -> int:
    """Messages ready in ``queue_name`` (passive declare)."""
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        return int(queue.declaration_result.message_count or 0)
    finally:
        await connection.close()
