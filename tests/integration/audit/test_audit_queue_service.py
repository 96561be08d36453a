"""The audit service wired for queue operations: a broker-parked message gets its parked event
from the parked log, is listed as parked, and ``release`` through the API sends it back."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import aiohttp
import pytest

from postline.app.settings import context_for
from postline.audit.main import AuditService
from postline.control import FLUSH_HEADER
from postline.lifecycle import Supervisor
from postline.topology import Stage
from tests.integration.audit.flush_support import BODY, drain, envelope
from tests.support.broker import wait_until
from tests.support.net import free_port

pytestmark = pytest.mark.integration


async def park_by_delivery_limit(url: str, queue_name: str, times: int) -> None:
    """Take the message and give it back until the broker parks it (a crashing worker)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        given_back = 0
        for _ in range(400):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            await message.nack(requeue=True)
            given_back += 1
            if given_back >= times:
                return
        raise AssertionError("the message never came back")
    finally:
        await connection.close()


async def test_a_broker_parked_message_is_listed_as_parked_and_released_back(
    broker_settings, tmp_path
):
    port = free_port()
    settings = broker_settings(
        audit={"trail_dir": str(tmp_path), "api_listen": f"127.0.0.1:{port}"},
        delivery={"retry_schedule": "10m"},
    )
    service = AuditService(settings.audit, context_for(settings), Supervisor())
    await service.start()
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until(lambda: service.ready, 15, "the audit service to be ready")
        bus, topology, url = service.worker.bus, service.worker.bus.topology, settings.broker.url
        await bus.publish_stage(Stage.DELIVER, BODY, envelope("PK1"))
        deliver = topology.queue_name(Stage.DELIVER)
        await park_by_delivery_limit(url, deliver, settings.broker.delivery_limit + 1)
        listed: list[Any] = []

        async def parked() -> bool:
            async with (
                aiohttp.ClientSession() as http,
                http.get(base + "/v1/messages", params={"state": "parked"}) as response,
            ):
                listed[:] = (await response.json())["messages"]
            return bool(listed)

        await wait_until(parked, 15, "the parked event in the index")
        [message] = listed
        event = next(e for e in message["events"] if e["kind"] == "parked")
        assert (message["message_id"], event["stage"], event["reason"]) == (
            "PK1", "deliver", "delivery_limit")  # fmt: skip
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                base + "/v1/queue/release", json={"ids": ["PK1"], "actor": "ops"}
            ) as response,
        ):
            answer = await response.json()
        assert response.status == 200 and answer["matched"] == 1, answer
        moved: list[Any] = []

        async def back() -> bool:
            moved.extend(await drain(url, deliver))
            return bool(moved)

        await wait_until(back, 15, "the released message back in deliver")
        assert [m.message_id for m in moved] == ["PK1"]
        assert moved[0].headers[FLUSH_HEADER] == answer["request_id"]
    finally:
        await service.drain(5)
        await service.close()
