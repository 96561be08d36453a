"""Filter throughput per worker: the default chain, plus DKIM (RSA 2048, Ed25519, both).

Usage (repository root; RabbitMQ on 127.0.0.1:5672 for ``--through broker``)::

    .venv/bin/python bench/filter_throughput.py --messages 2000
    .venv/bin/python bench/filter_throughput.py --messages 2000 --through handler

For each chain (``headers``; ``headers, dkim`` with an RSA 2048 key, with an
Ed25519 key, and with both), it measures one filter worker (one process, the
default ``[filter] concurrency`` 16) handling ``--messages`` messages of
``--size`` bytes (headers, a text body; one recipient each):

* ``--through broker`` (default): messages preloaded into ``submit`` of a
  throw-away namespace, consumed by the filter service built as
  ``postline filter`` builds it, timed until every message is on ``deliver``
  (each also publishes its ``filtered`` event, with confirms; RabbitMQ shares
  the machine). The namespace is deleted afterwards.
* ``--through handler``: the same handler called in-process with a bus that
  only counts, so the number is the filter's own CPU cost (parse, chain,
  re-assembly), without RabbitMQ.

It prints msgs/s per chain and, for ``--through handler``, the p50/p99 of one
message's time in the handler (with up to 16 messages sharing the CPU). Not a
test: numbers depend on the machine. Record them in docs/benchmarks.md under
"Filter".
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, cast

from common import BROKER, drop_topology, percentiles_ms

from postline.app.settings import Settings, context_for, topology_for
from postline.bus import Bus, Delivery
from postline.filter.chain import Chain
from postline.filter.dkim_keys import generate
from postline.filter.handler import FilterHandler
from postline.filter.main import build, resolved
from postline.filter.registry import build_filters
from postline.lifecycle import Supervisor
from postline.models import ENVELOPE_HEADER, Envelope, Event, new_message_id
from postline.topology import Stage

CHAINS = ("headers", "headers+dkim-rsa", "headers+dkim-ed25519", "headers+dkim-dual")


def message_bytes(size: int) -> bytes:
    head = (
        b"From: Mary <mary@company.test>\r\nTo: john@partner.test\r\nSubject: benchmark\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def filter_section(chain: str, keys_dir: Path) -> dict[str, Any]:
    """The ``[filter]`` section of one benchmarked chain (keys made in ``keys_dir``)."""
    if chain == "headers":
        return {"chain": ["headers"]}
    kinds = {"rsa": ["rsa"], "ed25519": ["ed25519"], "dual": ["rsa", "ed25519"]}
    keys = []
    for algorithm in kinds[chain.rpartition("-")[2]]:
        path = keys_dir / f"{algorithm}.pem"
        if not path.exists():
            path.write_bytes(generate(algorithm)[0])  # type: ignore[arg-type]
        keys.append({"domain": "company.test", "selector": algorithm, "key_file": str(path)})
    return {"chain": ["headers", "dkim"], "dkim": {"keys": keys}}


class CountingBus:
    """Counts what the handler hands on, for ``--through handler``."""

    def __init__(self) -> None:
        self.delivered = 0

    async def publish_events(self, events: list[Event]) -> None:
        return None

    async def publish_stage(self, stage: Stage, body: bytes, envelope: Envelope) -> None:
        self.delivered += stage is Stage.DELIVER


def envelope() -> Envelope:
    return Envelope(message_id=new_message_id(), mail_from="mary@company.test",
                    rcpt_to=("john@partner.test",))  # fmt: skip


async def through_handler(settings: Settings, count: int, data: bytes) -> tuple[float, list[float]]:
    """Seconds for ``count`` messages, and each message's time in the handler."""
    section = resolved(settings.filter, context_for(settings))
    bus = CountingBus()
    handler = FilterHandler(Chain(build_filters(section), section.timeout), cast(Bus, bus),
                            reporting_mta="relay.test")  # fmt: skip
    slots = asyncio.Semaphore(section.concurrency)
    each: list[float] = []

    async def one() -> None:
        env = envelope()
        async with slots:
            began = time.perf_counter()
            await handler(Delivery(data, {ENVELOPE_HEADER: env.to_header()}, env.message_id,
                                   "submit", False, 0))  # fmt: skip
            each.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    assert bus.delivered == count
    return time.perf_counter() - started, each


async def through_broker(settings: Settings, count: int, data: bytes) -> float:
    probe = Bus(settings.broker, topology_for(settings), name="bench", on_fatal=print)
    done = asyncio.Event()
    seen = 0

    async def on_deliver(delivery: Delivery) -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            done.set()

    probe.add_consumer(Stage.DELIVER, on_deliver, prefetch=200)
    await probe.start()
    assert await probe.wait_connected(10)
    for start in range(0, count, 200):
        batch = range(start, min(count, start + 200))
        await asyncio.gather(*(probe.publish_stage(Stage.SUBMIT, data, envelope()) for _ in batch))
    service = build(settings.filter, context_for(settings), Supervisor())
    started = time.perf_counter()
    await service.start()
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    await service.drain(5)
    await service.close()
    await probe.drain(1)
    await probe.close()
    return elapsed


async def run_one(chain: str, args: argparse.Namespace, keys_dir: Path) -> dict[str, Any]:
    namespace = f"bench-filter-{uuid.uuid4().hex[:8]}"
    settings = Settings.model_validate({
        "broker": {"url": BROKER, "namespace": namespace},
        "relay": {"hostname": "relay.test"},
        "filter": {**filter_section(chain, keys_dir), "metrics_listen": None},
    })  # fmt: skip
    data = message_bytes(args.size)
    if args.through == "handler":
        elapsed, each = await through_handler(settings, args.messages, data)
        return {"chain": chain, "msgs_per_s": round(args.messages / elapsed, 1),
                **percentiles_ms(each)}  # fmt: skip
    try:
        elapsed = await through_broker(settings, args.messages, data)
    finally:
        await drop_topology(settings)
    return {"chain": chain, "msgs_per_s": round(args.messages / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--through", choices=("broker", "handler"), default="broker")
    parser.add_argument("--chains", nargs="*", choices=CHAINS, default=list(CHAINS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as keys:
        for chain in args.chains:
            print(asyncio.run(run_one(chain, args, Path(keys))), flush=True)


if __name__ == "__main__":
    main()
