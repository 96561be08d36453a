"""Declaring the topology on the real RabbitMQ."""

from __future__ import annotations

import aio_pika
import pytest

from postline.app.settings import topology_for
from postline.topology import TopologyMismatch, declare

pytestmark = pytest.mark.integration


async def test_topology_declares_twice_without_error(broker_settings) -> None:
    settings = broker_settings()
    topology = topology_for(settings)
    connection = await aio_pika.connect(settings.broker.url)
    try:
        await declare(connection, topology)
        await declare(connection, topology)
        channel = await connection.channel()
        for queue in topology.queues:
            await channel.declare_queue(queue.name, passive=True)
    finally:
        await connection.close()


async def test_topology_mismatch_fails_fast_with_a_clear_error(broker_settings) -> None:
    settings = broker_settings()
    topology = topology_for(settings)
    connection = await aio_pika.connect(settings.broker.url)
    try:
        channel = await connection.channel()
        submit = topology.queues[0].name
        await channel.declare_queue(submit, durable=True, arguments={"x-queue-type": "classic"})
        with pytest.raises(TopologyMismatch, match="other arguments"):
            await declare(connection, topology)
    finally:
        await connection.close()
