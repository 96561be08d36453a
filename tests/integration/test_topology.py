"""Declaring the topology on the real RabbitMQ."""

from __future__ import annotations

from dataclasses import replace

import aio_pika
import pytest

from postline.app.settings import topology_for
from postline.topology import INITIAL_GROUP_SIZE, QueueSpec, Topology, TopologyMismatch, declare

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
        QueueSpec(q.name, {k: v for k, v in q.arguments.items() if k != INITIAL_GROUP_SIZE})
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
        assert all(INITIAL_GROUP_SIZE not in q.arguments for q in in_force.queues)
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
        assert {q.arguments[INITIAL_GROUP_SIZE] for q in in_force.queues} == {3}
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
