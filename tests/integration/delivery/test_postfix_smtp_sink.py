"""Postfix's smtp-sink, an independent receiver, gets canonical, dot-stuffed messages."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.broker import wait_until

pytestmark = pytest.mark.integration

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
# Bare LF, bare CR, a lone dot and a dot-started line: what a smuggling attempt would use.
BODY = b"Subject: dots\n\nfirst\r\n.\r\n..two dots\nbare cr\rend\n.\nMAIL FROM:<x@y>\r\n"
CANONICAL = (
    b"Subject: dots\r\n\r\nfirst\r\n.\r\n..two dots\r\nbare cr\r\nend\r\n.\r\nMAIL FROM:<x@y>\r\n"
)


@pytest.fixture
def postfix_sink(smtp_port: int) -> Iterator[Path]:
    """``smtp-sink -d DIR/%M. 127.0.0.1:PORT``: each transaction dumped to a file.

    As root, smtp-sink must drop to another user (``-u nobody``), who must be able to
    reach the dump directory: so it lives directly under the system temp directory.
    """
    if not os.path.exists(SMTP_SINK):
        pytest.skip("Postfix smtp-sink is not installed (Debian package postfix)")
    dump = Path(tempfile.mkdtemp(prefix="postline-smtp-sink-"))
    dump.chmod(0o777)
    command = [SMTP_SINK, "-d", f"{dump}/%M.", f"127.0.0.1:{smtp_port}", "10"]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    try:
        yield dump
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=5)
        shutil.rmtree(dump, ignore_errors=True)
        assert b"fatal" not in errors, errors.decode()


async def test_smtp_sink_receives_the_canonical_crlf_dot_stuffed_message(
    routed: Routed, postfix_sink: Path
) -> None:
    harness = await routed()
    await harness.send(["a@x.test", "b@x.test"], body=BODY)
    [event] = await harness.wait_for(EventKind.DELIVERED, "a@x.test", timeout=20)
    await harness.wait_for(EventKind.DELIVERED, "b@x.test")
    assert event.reply is not None and event.reply.code == 250
    await wait_until(lambda: any(postfix_sink.iterdir()), 5, "smtp-sink to dump the message")
    [content] = await asyncio.to_thread(lambda: [f.read_bytes() for f in postfix_sink.iterdir()])
    # smtp-sink writes the envelope as X- headers, then each received line (CRLF removed,
    # dot-stuffing undone). A bare CR or LF we failed to canonicalise would survive as a
    # stray byte or a missing line; a wrong dot-stuffing would lose or add dots.
    assert b"X-Rcpt-Args: <a@x.test>" in content and b"X-Rcpt-Args: <b@x.test>" in content
    received_lines = content.split(b"Subject: dots\n", 1)[1]
    assert received_lines == CANONICAL.split(b"\r\n", 1)[1].replace(b"\r\n", b"\n") + b"\n"
    assert b"\r" not in received_lines
