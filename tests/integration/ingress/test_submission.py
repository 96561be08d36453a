"""Ingress end to end against the real RabbitMQ: queueing, relay rights, AUTH, broker down."""

from __future__ import annotations

import asyncio
import shutil
import smtplib
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from postline.bus import PublishError
from postline.ingress.users import load_users
from postline.models import EventKind
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import PASSWORD
from tests.support.broker import wait_until
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration
MESSAGE = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n"


async def test_accepted_message_is_on_the_submit_queue_with_its_envelope(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress()
    smtp = aiosmtplib.SMTP(hostname=ingress.plain.host, port=ingress.plain.port, start_tls=False)
    await smtp.connect()
    errors, reply = await smtp.sendmail("alice@example.org", ["bob@example.net"], MESSAGE)
    await smtp.quit()
    assert errors == {}
    assert reply.startswith("2.0.0 Ok: queued as ")
    queue_id = reply.rsplit(" ", 1)[1]
    [(body, envelope)] = await ingress.submitted()
    assert body == MESSAGE
    assert envelope.message_id == queue_id
    assert envelope.mail_from == "alice@example.org"
    assert envelope.rcpt_to == ("bob@example.net",)
    assert envelope.client_ip == "127.0.0.1"
    assert envelope.helo is not None
    assert envelope.auth_user is None and envelope.tls is False


async def test_relay_refused_for_unauthenticated_client_outside_relay_networks(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(relay_networks=["127.0.0.1/32"])
    client = await RawClient.connect(*ingress.plain, source="127.0.0.5")
    await client.ehlo()
    assert (await client.command("MAIL FROM:<alice@example.org>")).code == 250
    refused = await client.command("RCPT TO:<bob@example.net>")
    assert refused.text == "554 5.7.1 Relay access denied"
    data = await client.command("DATA")
    assert data.code == 503, "DATA must not be reachable without an accepted recipient"
    await client.close()
    assert await ingress.submitted() == []


async def test_relay_allowed_for_client_inside_relay_networks_whatever_the_sender(
    start_ingress: StartIngress,
) -> None:
    ingress = await start_ingress(relay_networks=["127.0.0.0/29"])
    client = await RawClient.connect(*ingress.plain, source="127.0.0.5")
    await client.ehlo()
    assert (await client.command("MAIL FROM:<>")).code == 250
    assert (await client.command("RCPT TO:<bob@example.net>")).code == 250
    await client.close()


async def test_auth_over_starttls_is_accepted_and_relays_from_outside_relay_networks(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    smtp = aiosmtplib.SMTP(
        hostname=ingress.plain.host,
        port=ingress.plain.port,
        source_address=("127.0.0.5", 0),
        start_tls=True,
        tls_context=client_tls(),
    )
    await smtp.connect()
    await smtp.ehlo()
    assert smtp.supports_extension("auth")
    await smtp.login("alice", PASSWORD)
    errors, reply = await smtp.sendmail("alice@example.org", ["carol@example.net"], MESSAGE)
    await smtp.quit()
    assert errors == {} and reply.startswith("2.0.0 Ok: queued as ")
    [(_, envelope)] = await ingress.submitted()
    assert envelope.auth_user == "alice"
    assert envelope.tls is True
    assert envelope.client_ip == "127.0.0.5"


async def test_auth_over_plaintext_is_not_offered_and_refused(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    client = await RawClient.connect(*ingress.plain, source="127.0.0.5")
    ehlo = await client.ehlo()
    assert "STARTTLS" in ehlo.lines
    assert not any(line.startswith("AUTH") for line in ehlo.lines)
    refused = await client.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==")
    assert refused.text == "538 5.7.11 Encryption required for requested authentication mechanism"
    assert (await client.command("MAIL FROM:<alice@example.org>")).code == 250
    assert (await client.command("RCPT TO:<bob@example.net>")).code == 554
    await client.close()


async def test_broker_unreachable_gives_451_within_publish_timeout_while_listening(
    start_ingress: StartIngress,
) -> None:
    broker = {"url": "amqp://guest:guest@127.0.0.1:1/", "publish_timeout": "1s"}
    ingress = await start_ingress(connect=False, broker=broker)
    assert not ingress.service.ready
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<alice@example.org>")).code == 250
    assert (await client.command("RCPT TO:<bob@example.net>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send(MESSAGE + b".\r\n")
    started = time.monotonic()
    reply = await client.reply(timeout=10)
    assert reply.code == 451 and reply.enhanced == "4.3.0", reply
    assert time.monotonic() - started < 3
    assert (await client.command("NOOP")).code == 250, "the session goes on after a 451"
    await client.close()


async def test_user_added_with_the_cli_can_authenticate_without_a_restart(
    start_ingress: StartIngress, tls_settings: dict[str, Any], tmp_path: Path
) -> None:
    users = tmp_path / "users.toml"
    ingress = await start_ingress(**{**tls_settings, "users_file": str(users)})
    command = [sys.executable, "-m", "postline.app", "user", "add", "dave",
               "--users-file", str(users), "--sender", "dave@example.org"]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, command, input="s3cret-pass\n", text=True, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert "s3cret-pass" not in users.read_text()
    assert load_users(users)["dave"].password_hash.startswith("$argon2id$")

    def submit() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(*ingress.plain, source_address=("127.0.0.5", 0)) as smtp:
            smtp.starttls(context=client_tls())
            smtp.login("dave", "s3cret-pass")
            return smtp.sendmail("dave@example.org", ["erin@example.net"], MESSAGE)

    assert await asyncio.to_thread(submit) == {}
    await wait_until(lambda: _one_message(ingress), 10, "the message on the submit queue")


async def _one_message(ingress: Any) -> bool:
    return len(await ingress.submitted()) == 1


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks (Debian package) not installed")
async def test_swaks_submits_with_starttls_and_auth(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    command = ["swaks", "--server", f"{ingress.plain.host}:{ingress.plain.port}",
               "--local-interface", "127.0.0.5", "--tls", "--auth", "LOGIN",
               "--auth-user", "alice", "--auth-password", PASSWORD,
               "--from", "alice@alice.test", "--to", "frank@example.net",
               "--header", "Subject: swaks"]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "<~  250 2.0.0 Ok: queued as" in done.stdout
    [(body, envelope)] = await ingress.submitted()
    assert envelope.auth_user == "alice" and envelope.tls
    assert b"Subject: swaks" in body


async def test_received_event_describes_the_queued_message(start_ingress: StartIngress) -> None:
    ingress = await start_ingress()
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<alice@example.org>")).code == 250
    assert (await client.command("RCPT TO:<bob@example.net>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send(MESSAGE + b".\r\n")
    queue_id = (await client.reply()).text.rsplit(" ", 1)[1]
    await client.close()
    events: list[Any] = []

    async def arrived() -> bool:
        events.extend(await ingress.events())
        return bool(events)

    await wait_until(arrived, 10, "the received event")
    [event] = events
    assert event.kind == EventKind.RECEIVED and event.message_id == queue_id
    assert event.mail_from == "alice@example.org" and event.rcpt_to == ("bob@example.net",)
    assert event.size == len(MESSAGE) and event.client_ip == "127.0.0.1"


async def test_failed_received_event_does_not_change_the_250(
    start_ingress: StartIngress, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingress = await start_ingress()

    async def events_down(*_: Any) -> None:
        raise PublishError("events exchange unavailable")

    monkeypatch.setattr(ingress.service.bus, "publish_events", events_down)
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<alice@example.org>")).code == 250
    assert (await client.command("RCPT TO:<bob@example.net>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send(MESSAGE + b".\r\n")
    assert (await client.reply()).text.startswith("250 2.0.0 Ok: queued as")
    await client.close()
    assert len(await ingress.submitted()) == 1
