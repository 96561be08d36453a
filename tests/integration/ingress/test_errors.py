"""Never 500 by accident; client strings stay out of log structure and metric labels."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from postline.logs import JsonFormatter
from tests.integration.ingress.client import RawClient
from tests.integration.ingress.conftest import StartIngress
from tests.integration.ingress.support import b64, plain
from tests.support.certs import client_tls

pytestmark = pytest.mark.integration


async def test_unexpected_hook_error_answers_451_and_is_logged_with_the_session_id(
    start_ingress: StartIngress, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingress = await start_ingress()

    async def broken(*_: Any) -> None:
        raise RuntimeError("policy bug")

    monkeypatch.setattr(ingress.service.handler, "handle_RCPT", broken)
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    with caplog.at_level(logging.ERROR, logger="postline.ingress"):
        reply = await client.command("RCPT TO:<b@example.net>")
    assert reply.text == "451 4.3.0 Local error; message not queued, try again later"
    [record] = [r for r in caplog.records if r.getMessage() == "unexpected error in RCPT"]
    assert record.exc_info is not None
    assert len(getattr(record, "session_id", "")) == 12
    assert (await client.command("NOOP")).code == 250, "the session survives"
    assert (await client.command("DATA")).code == 503, "the transaction was reset"
    await client.close()


async def test_error_while_queueing_answers_451_never_250_or_500(
    start_ingress: StartIngress, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingress = await start_ingress()

    async def broken(*_: Any) -> None:
        raise ValueError("unexpected")

    monkeypatch.setattr(ingress.service.bus, "publish_stage", broken)
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    assert (await client.command("MAIL FROM:<a@example.org>")).code == 250
    assert (await client.command("RCPT TO:<b@example.net>")).code == 250
    assert (await client.command("DATA")).code == 354
    await client.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
    assert (await client.reply()).text.startswith("451 4.3.0")
    await client.close()


async def test_client_strings_cannot_forge_log_lines(
    start_ingress: StartIngress, tls_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    ingress = await start_ingress(**tls_settings)
    forged = 'alice\n{"level": "info", "msg": "authenticated", "user": "root"}'
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo()
    await client.starttls(client_tls())
    await client.ehlo()
    with caplog.at_level(logging.INFO, logger="postline.ingress"):
        assert (await client.command(f"AUTH PLAIN {plain(forged, 'x')}")).code == 535
    await client.close()
    [record] = [r for r in caplog.records if r.getMessage() == "AUTH failed"]
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["user"] == forged


ALLOWED_LABELS = {
    "listener": {"plain", "implicit_tls"},
    "reason": {
        "max_sessions",
        "max_sessions_per_ip",
        "draining",
        "untrusted_proxy_peer",
        "bad_proxy_header",
        "relay_denied",
        "sender_not_owned",
        "too_many_recipients",
        "size_declared",
        "rate_ip",
        "rate_user",
    },
    "mode": {"starttls", "implicit"},
    "result": {
        "ok",
        "failed",
        "success",
        "failure",
        "malformed",
        "locked",
        "no_tls",
        "unknown_mechanism",
        "queued",
        "not_queued",
        "unconfirmed",
        "refused_content",
    },
    "mechanism": {"PLAIN", "LOGIN", "other"},
    "scope": {"ip", "user"},
    "reply_class": {"2xx", "4xx", "5xx"},
    "le": None,
}


async def test_metric_labels_never_carry_client_strings(
    start_ingress: StartIngress, tls_settings: dict[str, Any]
) -> None:
    ingress = await start_ingress(**tls_settings)
    client = await RawClient.connect(*ingress.plain)
    await client.ehlo("evil-helo-label")
    for command in ("X-EVIL-COMMAND", "MAIL FROM:<evil-sender@evil.test>"):
        await client.command(command)
    await client.starttls(client_tls())
    await client.ehlo()
    await client.command("AUTH X-EVIL-MECHANISM")
    await client.command(f"AUTH LOGIN {b64('evil-user')}")
    await client.command(b64("evil-password"))
    await client.close()
    for family in REGISTRY.collect():
        if not family.name.startswith("postline_ingress"):
            continue
        for sample in family.samples:
            for label, value in sample.labels.items():
                allowed = ALLOWED_LABELS[label]
                assert allowed is None or value in allowed, (sample.name, label, value)
