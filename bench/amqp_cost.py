"""What one AMQP message costs here: CPU per confirmed publish and per consumed, acked message.

Usage (repository root, RabbitMQ on 127.0.0.1:5672)::

    .venv/bin/python bench/amqp_cost.py --messages 5000 --size 4096

Publishes ``--messages`` persistent messages of ``--size`` bytes to a fresh
quorum queue with publisher confirms (``--concurrency`` in flight, with
aio-pika as Postline's bus uses it), then consumes them (prefetch
``--concurrency``) and acks each one; prints, per message, the CPU this
process (the client: aio-pika, aiormq, pamqp, asyncio, the kernel's socket
work) and the RabbitMQ node (``/proc``) used in each phase. Postline moves
about six such messages per mail (``submit``, ``deliver`` and four events),
so these numbers bound what a mail costs whatever the services do. The queue
is deleted afterwards. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import aio_pika
from common import BROKER
from procstat import Sampler
from runner import rabbitmq_pid

Phase = tuple[float, float, float]


async def measure(messages: int, size: int, concurrency: int) -> None:
    broker = rabbitmq_pid()
    connection = await aio_pika.connect(BROKER)
    name = f"bench-amqp-{uuid.uuid4().hex[:8]}"
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        body = b"x" * size
        limit = asyncio.Semaphore(concurrency)

        async def publish() -> None:
            async with limit:
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=name)

        published = await _phase(
            broker, lambda: asyncio.gather(*(publish() for _ in range(messages)))
        )
        report("publish + confirm", messages, broker, published)
        await channel.set_qos(prefetch_count=concurrency)
        done = asyncio.Event()
        count = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            await message.ack()
            count += 1
            if count == messages:
                done.set()

        async def consume() -> None:
            tag = await queue.consume(on_message)
            await done.wait()
            await queue.cancel(tag)

        report("consume + ack", messages, broker, await _phase(broker, consume))
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()


async def _phase(broker: int | None, work: Callable[[], Awaitable[object]]) -> Phase:
    """(wall seconds, this process's CPU seconds, RabbitMQ's CPU seconds) of ``work()``."""
    sampler = Sampler()
    if broker is not None:
        sampler.watch(broker, "rabbitmq")
    sampler.start()
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    client, elapsed = time.process_time() - cpu, time.perf_counter() - wall
    usage = sampler.stop()
    return elapsed, client, usage["rabbitmq"].cpu_seconds if "rabbitmq" in usage else 0.0


def report(phase: str, messages: int, broker: int | None, values: Phase) -> None:
    elapsed, client, server = values
    print(
        f"{phase:18} {messages / elapsed:7.0f} msgs/s"
        f"   client {client / messages * 1e6:5.0f} us/msg"
        f"   rabbitmq {server / messages * 1e6:5.0f} us/msg"
        + ("" if broker is not None else " (RabbitMQ's pid not found)")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(measure(args.messages, args.size, args.concurrency))


if __name__ == "__main__":
    main()
