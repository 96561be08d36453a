"""Delivery alone: the ``deliver`` queue -> ``DeliveryService`` -> Postfix's smtp-sink.

Usage (repository root, RabbitMQ on 127.0.0.1:5672, Debian's ``postfix`` package for
smtp-sink)::

    .venv/bin/python bench/delivery_throughput.py --messages 2000 --concurrency 32

For each mode (connection reuse on, then off: ``max_messages_per_connection`` 100
and 1) it uses a throw-away broker namespace, preloads ``--messages`` messages of
``--size`` bytes into ``deliver`` (one recipient each, spread over ``--domains``
domains routed to one smtp-sink, so DNS is not measured), then starts the
delivery service in this process and times until every recipient is delivered.
It prints msgs/s and the p50/p99 of one delivery attempt (route, session,
MAIL/RCPT/DATA, final reply), then deletes the namespace. Not a test: numbers
depend on the machine. Record them in docs/benchmarks.md under "Delivery".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from common import BROKER, drop_topology, free_port, percentiles_ms
from prometheus_client import REGISTRY

from postline.app.settings import Settings, context_for, topology_for
from postline.bus import Bus
from postline.delivery.engine import Conversation, Engine
from postline.delivery.main import DeliveryService
from postline.delivery.transaction import Transaction
from postline.lifecycle import Supervisor
from postline.models import Envelope, new_message_id
from postline.topology import Stage


@contextlib.contextmanager
def smtp_sink(port: int) -> Iterator[None]:
    """Postfix's smtp-sink on ``127.0.0.1:port``, accepting everything, storing nothing."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(binary):
        raise SystemExit("smtp-sink not found: apt-get install postfix")
    command = [binary, f"127.0.0.1:{port}", "1024"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(5)


def settings_for(args: argparse.Namespace, port: int, reuse: bool) -> Settings:
    routes = {f"d{n}.bench.test": f"[127.0.0.1]:{port}" for n in range(args.domains)}
    return Settings.model_validate(
        {
            "broker": {"url": BROKER, "namespace": f"bench-{uuid.uuid4().hex[:10]}"},
            "delivery": {
                "helo_name": "bench.test",
                "routes": routes,
                "concurrency": args.concurrency,
                "per_destination_concurrency": args.per_destination,
                "max_messages_per_connection": 100 if reuse else 1,
                "deny_private_destinations": False,
                "metrics_listen": None,
            },
        }
    )


def timed_attempts(durations: list[float]) -> Callable[[], None]:
    """Record every ``Engine.attempt`` duration; returns the undo function."""
    original = Engine.attempt

    async def attempt(self: Engine, domain: str, transaction: Transaction) -> list[Conversation]:
        started = time.perf_counter()
        try:
            return await original(self, domain, transaction)
        finally:
            durations.append(time.perf_counter() - started)

    Engine.attempt = attempt  # type: ignore[method-assign]

    def undo() -> None:
        Engine.attempt = original  # type: ignore[method-assign]

    return undo


def delivered_total() -> float:
    return (
        REGISTRY.get_sample_value("postline_delivery_attempts_total", {"result": "delivered"}) or 0
    )


async def preload(settings: Settings, args: argparse.Namespace) -> None:
    bus = Bus(settings.broker, topology_for(settings), name="bench-preload", on_fatal=print)
    await bus.start()
    if not await bus.wait_connected(10):
        raise SystemExit(f"RabbitMQ not reachable at {BROKER}")
    body = b"Subject: bench\r\nFrom: bench@example.org\r\n\r\n" + b"x" * max(args.size - 50, 0)
    try:
        for start in range(0, args.messages, 200):
            batch: list[Awaitable[None]] = []
            for n in range(start, min(start + 200, args.messages)):
                envelope = Envelope(
                    message_id=new_message_id(),
                    mail_from="bench@example.org",
                    rcpt_to=(f"user{n}@d{n % args.domains}.bench.test",),
                )
                batch.append(bus.publish_stage(Stage.DELIVER, body, envelope))
            await asyncio.gather(*batch)
    finally:
        await bus.close()


async def run_mode(args: argparse.Namespace, port: int, reuse: bool) -> dict[str, Any]:
    settings = settings_for(args, port, reuse)
    await preload(settings, args)
    durations: list[float] = []
    undo = timed_attempts(durations)
    service = DeliveryService(settings.delivery, context_for(settings), Supervisor())
    target = delivered_total() + args.messages
    started = time.perf_counter()
    try:
        await service.start()
        while delivered_total() < target:
            if time.perf_counter() - started > args.timeout:
                raise SystemExit(f"timed out with {target - delivered_total():.0f} left")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        undo()
        await service.drain(5)
        await service.close()
        await drop_topology(settings)
    return {
        "mode": "reuse" if reuse else "no reuse",
        "seconds": elapsed,
        "rate": args.messages / elapsed,
        **percentiles_ms(durations),
    }


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    modes = {"both": [True, False], "reuse": [True], "no-reuse": [False]}[args.mode]
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(
        f"messages={args.messages} size={args.size} domains={args.domains} "
        f"concurrency={args.concurrency} per_destination={args.per_destination}"
    )
    with smtp_sink(port):
        for reuse in modes:
            result = await run_mode(args, port, reuse)
            print(
                f"{result['mode']:>9}: {result['rate']:8.1f} msgs/s "
                f"({result['seconds']:.1f}s)  attempt p50 {result['p50_ms']:.1f} ms  "
                f"p99 {result['p99_ms']:.1f} ms"
            )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096, help="message size in bytes")
    parser.add_argument("--domains", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="[delivery] concurrency")
    parser.add_argument("--per-destination", type=int, default=10)
    parser.add_argument("--mode", choices=["both", "reuse", "no-reuse"], default="both")
    parser.add_argument("--timeout", type=float, default=600)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
