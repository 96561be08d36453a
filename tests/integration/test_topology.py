"""Declaring the topology on the real RabbitMQ."""

from __future__ import annotations

from dataclasses import replace

import aio_pika
import pytest

from postline.app.settings import topology_for
from postline.topology import (
    CREATION_ONLY,
    INITIAL_CLUSTER_SIZE,
    INITIAL_GROUP_SIZE,
    QueueSpec,
    Topology,
    TopologyMismatch,
    declare,
)

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


def without_initial_group_size(topology: Topology) -> Topology:
    """The same topology as the releases before ``[broker] quorum_size`` declared it."""
    queues = tuple(
        QueueSpec(q.name, {k: v for k, v in q.arguments.items() if k not in CREATION_ONLY})
        for q in topology.queues
    )
    return replace(topology, queues=queues)


async def test_queues_declared_before_quorum_size_existed_are_adopted_not_refused(
    broker_settings,
) -> None:
    settings = broker_settings()
    topology = topology_for(settings)
    connection = await aio_pika.connect(settings.broker.url)
    try:
        await declare(connection, without_initial_group_size(topology))  # the old release
        in_force = await declare(connection, topology)  # the upgrade
        assert all(not CREATION_ONLY & q.arguments.keys() for q in in_force.queues)
        assert in_force == without_initial_group_size(topology)
    finally:
        await connection.close()


async def test_a_changed_quorum_size_keeps_the_existing_queues_members(broker_settings) -> None:
    settings = broker_settings()
    connection = await aio_pika.connect(settings.broker.url)
    try:
        await declare(connection, topology_for(settings))
        grown = broker_settings(broker={"quorum_size": 5})
        in_force = await declare(connection, topology_for(grown))
        sizes = {
            q.arguments.get(INITIAL_GROUP_SIZE, q.arguments.get(INITIAL_CLUSTER_SIZE))
            for q in in_force.queues
        }
        assert sizes == {3}
    finally:
        await connection.close()


async def test_a_changed_delivery_limit_is_still_a_mismatch(broker_settings) -> None:
    settings = broker_settings()
    connection = await aio_pika.connect(settings.broker.url)
    try:
        await declare(connection, topology_for(settings))
        changed = broker_settings(broker={"delivery_limit": 9})
        with pytest.raises(TopologyMismatch, match=r"x-delivery-limit.*docs/operations\.md"):
            await declare(connection, topology_for(changed))
    finally:
        await connection.close()


async def test_held_and_control_queues_take_default_exchange_publishes(broker_settings) -> None:
    settings = broker_settings()
    topology = topology_for(settings)
    connection = await aio_pika.connect(settings.broker.url)
    try:
        await declare(connection, topology)
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        for name in (topology.held_queue, topology.control_stream):
            message = aio_pika.Message(b"x", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await channel.default_exchange.publish(message, name, mandatory=True)
        held = await channel.declare_queue(topology.held_queue, passive=True)
        assert held.declaration_result.message_count == 1  # the stream: tests/test_control.py
        parked = await channel.get_exchange(topology.parked_queue)
        await parked.publish(aio_pika.Message(b"poison"), "")
        log = await channel.declare_queue(topology.parked_log_queue, passive=True)
        assert (await log.get(timeout=5)).body == b"poison"
    finally:
        await connection.close()
