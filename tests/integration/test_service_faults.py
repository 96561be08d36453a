"""Services as real processes facing a broken broker: exit clearly, never hang, never 250."""

from __future__ import annotations

import asyncio
import contextlib
import re
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from postline.app.settings import load_settings, topology_for
from tests.support.broker import BROKER_URL, delete_topology, new_namespace
from tests.support.relay import RelayProcess

pytestmark = pytest.mark.integration


def exit_code_within(relay: RelayProcess, seconds: float) -> int:
    assert relay.process is not None
    try:
        return relay.process.wait(seconds)
    except subprocess.TimeoutExpired:
        relay.process.kill()
        raise AssertionError(f"still running after {seconds}s:\n{relay.logs()[-2000:]}") from None


def test_worker_exits_non_zero_when_the_broker_stays_unreachable_past_the_watchdog(
    tmp_path: Path,
) -> None:
    relay = RelayProcess(
        tmp_path,
        {"broker": {"url": "amqp://guest:guest@127.0.0.1:1/", "watchdog_timeout": "2s"}},
        command="filter",
    )
    relay.start(wait_ready=False)
    assert exit_code_within(relay, 20) == 1
    assert "fatal: no broker connection or consumer for 2s" in relay.logs()


def test_topology_mismatch_at_startup_stops_the_service_with_a_clear_error(
    tmp_path: Path,
) -> None:
    namespace = new_namespace()
    relay = RelayProcess(tmp_path, {"broker": {"namespace": namespace}}, command="delivery")
    settings = load_settings(relay.config_path)

    async def conflicting_queue() -> None:
        connection = await aio_pika.connect(BROKER_URL)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(
                f"{namespace}.submit", durable=True, arguments={"x-queue-type": "classic"}
            )

    asyncio.run(conflicting_queue())
    try:
        relay.start(wait_ready=False)
        assert exit_code_within(relay, 20) == 1
        assert re.search(r"RabbitMQ refused the topology of namespace '[\w-]+'", relay.logs())
    finally:
        asyncio.run(delete_topology(topology_for(settings)))


@contextlib.contextmanager
def memory_alarm() -> Iterator[None]:
    """Raise a RabbitMQ memory alarm (publishers are blocked); always lift it on leaving."""
    current = subprocess.run(
        ["rabbitmqctl", "eval", "vm_memory_monitor:get_vm_memory_high_watermark()."],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    restore = current if re.fullmatch(r"[0-9.]+", current) else "0.4"
    subprocess.run(["rabbitmqctl", "set_vm_memory_high_watermark", "0.000001"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["rabbitmqctl", "set_vm_memory_high_watermark", restore],
                       check=True, capture_output=True)  # fmt: skip


def submit(port: int) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.test")
        client.mail("sender@example.org")
        client.rcpt("someone@example.net")
        return client.data(b"Subject: alarm\r\n\r\nhello\r\n")


def test_broker_resource_alarm_answers_451_within_the_publish_deadline_then_recovers(
    tmp_path: Path,
) -> None:
    relay = RelayProcess(tmp_path, {
        "broker": {"namespace": new_namespace(), "publish_timeout": "2s"},
        "ingress": {"relay_networks": ["127.0.0.1/32"]},
    }, command="ingress")  # fmt: skip
    relay.start()
    try:
        with memory_alarm():
            started = time.monotonic()
            code, text = submit(relay.smtp_port)
            assert (code, text[:5]) == (451, b"4.3.0")
            assert time.monotonic() - started < 6
        deadline = time.monotonic() + 30
        while (reply := submit(relay.smtp_port))[0] != 250:
            assert time.monotonic() < deadline, f"no recovery after the alarm: {reply}"
            time.sleep(0.5)
    finally:
        assert relay.stop() == 0
        asyncio.run(delete_topology(topology_for(load_settings(relay.config_path))))


def test_a_listener_that_cannot_bind_stops_the_process_promptly_with_exit_1(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        relay = RelayProcess(tmp_path, {
            "broker": {"namespace": new_namespace()},
            "ingress": {"listen": [f"127.0.0.1:{port}"]},
        })  # fmt: skip
        relay.start(wait_ready=False)
        assert exit_code_within(relay, 20) == 1
    assert "could not start" in relay.logs() and "address already in use" in relay.logs()
    asyncio.run(delete_topology(topology_for(load_settings(relay.config_path))))
