"""The broker: every ``[broker] url`` reachable with its credentials, the topology
present and as configured, and the right to publish and consume.

Nothing here creates, changes or reads the live topology's messages:

* ``broker <host:port>``: one connection per URL (``TIMEOUT`` s), closed at once.
* ``broker topology`` (on the first node that answered; a cluster shares it):
  a passive declare of every exchange and queue of ``topology_for(settings)``
  finds what is missing. Only when everything exists, each one is declared
  again with the configured type and arguments: RabbitMQ answers a redeclare
  of an existing queue without changing it, or refuses it with
  ``PRECONDITION_FAILED`` when the arguments differ (creation-only arguments
  are adopted, as the services do). Bindings cannot be read over AMQP; they
  are not checked.
* ``broker permissions``: a temporary exclusive, auto-delete queue
  ``<ns>.doctor-<random>`` (configure), bound to ``<ns>.work`` by a routing
  key and to ``<ns>.delay`` by a header no live binding uses (read on the
  exchanges), gets one confirmed, mandatory message through each exchange
  (write, as the services publish) and both are fetched back (read, as the
  services consume). No live queue sees any of it; the queue goes away with
  the connection. RabbitMQ grants permissions by name patterns, so a right on
  ``<ns>.doctor-...`` stands for one on the namespace's queues.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection

from postline.app.doctor.report import Check, Status, escape, failed, passed, warned
from postline.app.settings import Settings, topology_for
from postline.topology import Topology, adopt_existing

TIMEOUT = 5.0
TOPOLOGY = "broker topology"
PERMISSIONS = "broker permissions"
PROBE_HEADER = "postline-doctor"


def describe_url(url: str) -> str:
    """``host:port`` of an AMQP URL (never the password)."""
    parts = urlsplit(url)
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    return f"{parts.hostname or 'localhost'}:{port}"


def _why(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, aio_pika.exceptions.ProbableAuthenticationError):
        text = f"credentials refused ({text})"
    return escape(text)


async def broker_checks(settings: Settings) -> list[Check]:
    """Connection per URL, then topology and permissions on the first that answered."""
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
    checks: list[Check] = []
    connection: AbstractConnection | None = None
    for url in settings.broker.urls:
        name = f"broker {describe_url(url)}"
        try:
            opened = await asyncio.wait_for(aio_pika.connect(url, timeout=TIMEOUT), TIMEOUT + 1)
        except Exception as error:
            advice = "check [broker] url (host, port, user, password, vhost) and that RabbitMQ runs"
            checks.append(failed(name, f"cannot connect: {_why(error)}", advice))
            continue
        user = urlsplit(url).username or "guest"
        checks.append(passed(name, f"connected as {escape(user, 60)}"))
        if connection is None:
            connection = opened
        else:
            await opened.close()
    if connection is None:
        return checks
    try:
        topo = topology_for(settings)
        topology = await asyncio.wait_for(topology_check(connection, topo), 4 * TIMEOUT)
        checks.append(topology)
        if topology.status is Status.PASS:
            checks.append(await asyncio.wait_for(permissions_check(connection, topo), 4 * TIMEOUT))
        else:
            found = "not checked: the topology is not as configured"
            checks.append(warned(PERMISSIONS, found, "fix the topology first"))
    except TimeoutError:
        checks.append(failed(TOPOLOGY, "the broker stopped answering", "check RabbitMQ's health"))
    finally:
        await connection.close()
    return checks


async def topology_check(connection: AbstractConnection, topo: Topology) -> Check:
    """Everything present (passive), then everything as configured (module docstring)."""
    missing = await _missing(connection, topo)
    if missing:
        found = f"missing in namespace {topo.namespace}: {', '.join(missing)}"
        advice = "start the services once (they declare it) or run postline topology declare"
        return failed(TOPOLOGY, found, advice)
    mismatch = await _mismatch(connection, topo)
    if mismatch:
        advice = "see docs/operations.md (topology changes): a new namespace, or delete it"
        return failed(TOPOLOGY, escape(mismatch), advice)
    found = f"{len(topo.exchanges)} exchanges and {len(topo.queues)} queues of {topo.namespace}"
    return passed(TOPOLOGY, found + " present, arguments as configured")


async def _missing(connection: AbstractConnection, topo: Topology) -> list[str]:
    missing: list[str] = []
    channel = await connection.channel(publisher_confirms=False)
    for exchange in topo.exchanges:
        try:
            await channel.declare_exchange(exchange.name, exchange.type, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            missing.append(f"exchange {exchange.name}")
            channel = await connection.channel(publisher_confirms=False)
    for queue in topo.queues:
        try:
            await channel.declare_queue(queue.name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            missing.append(f"queue {queue.name}")
            channel = await connection.channel(publisher_confirms=False)
    await _close(channel)
    return missing


async def _mismatch(connection: AbstractConnection, topo: Topology) -> str | None:
    """The first exchange or queue RabbitMQ holds with other arguments, described."""
    for exchange in topo.exchanges:
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.declare_exchange(exchange.name, exchange.type, durable=True)
        except aio_pika.exceptions.ChannelPreconditionFailed as error:
            return f"exchange {exchange.name} differs: {error}"
        await _close(channel)
    for queue in topo.queues:
        arguments = dict(queue.arguments)
        while True:
            channel = await connection.channel(publisher_confirms=False)
            try:
                await channel.declare_queue(queue.name, durable=True, arguments=arguments)
                await _close(channel)
                break
            except aio_pika.exceptions.ChannelPreconditionFailed as error:
                adopted = adopt_existing(arguments, str(error))
                if adopted is None:
                    return f"queue {queue.name} differs: {error}"
                arguments = adopted[1]
    return None


async def permissions_check(connection: AbstractConnection, topo: Topology) -> Check:
    """Publish through both exchanges into a temporary queue and read it back."""
    token = secrets.token_hex(6)
    step = "declare a temporary queue"
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        queue = await channel.declare_queue(
            f"{topo.namespace}.doctor-{token}", exclusive=True, auto_delete=True
        )
        step = f"bind it to {topo.work_exchange} and {topo.delay_exchange}"
        headers: dict[str, Any] = {"x-match": "all", PROBE_HEADER: token}
        await queue.bind(topo.work_exchange, f"doctor-{token}")
        await queue.bind(topo.delay_exchange, "", arguments=headers)
        step = f"publish to {topo.work_exchange}"
        await _probe(channel, topo.work_exchange, f"doctor-{token}", {})
        step = f"publish to {topo.delay_exchange}"
        await _probe(channel, topo.delay_exchange, "", {PROBE_HEADER: token})
        step = "read the temporary queue"
        for _ in range(2):
            await queue.get(no_ack=True, timeout=TIMEOUT)
        await queue.delete(if_unused=False, if_empty=False)
    except Exception as error:
        found = f"could not {step}: {_why(error)}"
        advice = "give the [broker] url user configure, write and read rights on the namespace"
        return failed(PERMISSIONS, found, advice)
    finally:
        await _close(channel)
    found = f"published to {topo.work_exchange} and {topo.delay_exchange}, consumed it back"
    return passed(PERMISSIONS, found)


async def _probe(
    channel: AbstractChannel, exchange: str, key: str, headers: dict[str, str]
) -> None:
    target = await channel.get_exchange(exchange, ensure=False)
    message = aio_pika.Message(b"postline doctor probe", headers=dict(headers), expiration=60)
    await target.publish(message, routing_key=key, mandatory=True, timeout=TIMEOUT)


async def _close(channel: AbstractChannel) -> None:
    if not channel.is_closed:
        await channel.close()
