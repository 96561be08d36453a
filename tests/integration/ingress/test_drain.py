"""Graceful drain of a real ``postline --config FILE ingress`` process on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from postline.app.settings import Settings, topology_for
from postline.topology import Stage
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.support import take_all
from tests.support.broker import wait_until
from tests.support.net import free_port, http_status
from tests.support.relay import child_env, postline_argv

pytestmark = pytest.mark.integration


async def ready_is(port: int, expected: int) -> bool:
    return await asyncio.to_thread(http_status, f"http://127.0.0.1:{port}/readyz") == expected


async def test_sigterm_drains_open_transactions_and_refuses_new_work(
    broker_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = broker_settings()
    smtp_port, metrics_port = free_port(), free_port()
    config = tmp_path / "postline.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "broker": {"url": settings.broker.url, "namespace": settings.broker.namespace},
                "ingress": {
                    "listen": [f"127.0.0.1:{smtp_port}"],
                    "metrics_listen": f"127.0.0.1:{metrics_port}",
                    "hostname": "mx.test",
                    "relay_networks": ["127.0.0.1/32"],
                    "shutdown_grace": "20s",
                    "drain_delay": "1s",
                },
            }
        )
    )
    log = (tmp_path / "ingress.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *postline_argv(config, "ingress"), stdout=log, stderr=log, env=child_env()
    )
    try:
        await wait_until(lambda: ready_is(metrics_port, 200), 30, "/readyz to turn 200")
        busy = await RawClient.connect("127.0.0.1", smtp_port)
        await busy.ehlo()
        assert (await busy.command("MAIL FROM:<a@example.org>")).code == 250
        assert (await busy.command("RCPT TO:<b@example.net>")).code == 250
        assert (await busy.command("DATA")).code == 354
        await busy.send(b"Subject: drain\r\n\r\npart one\r\n")
        idle = await RawClient.connect("127.0.0.1", smtp_port)
        await idle.ehlo()

        process.send_signal(signal.SIGTERM)
        await wait_until(lambda: ready_is(metrics_port, 503), 5, "/readyz to turn 503")
        assert (await idle.reply(timeout=10)).text.startswith("421 4.3.2")
        assert await idle.closed()
        with pytest.raises(OSError):
            await RawClient.connect("127.0.0.1", smtp_port)

        await busy.send(b"part two\r\n.\r\n")
        assert (await busy.reply()).text.startswith("250 2.0.0 Ok: queued as")
        assert (await busy.command("MAIL FROM:<a@example.org>")).text.startswith("421 4.3.2")
        assert await busy.closed()
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
    submit = topology_for(settings).queue_name(Stage.SUBMIT)
    [(body, _)] = await take_all(settings.broker.url, submit)
    assert body == b"Subject: drain\r\n\r\npart one\r\npart two\r\n"
