"""SMTP smuggling through the whole relay: no payload ever becomes a second message at a sink.

Each payload hides ``MAIL FROM/RCPT TO/DATA`` behind a non-standard end of
data (``\\n.\\n``, ``\\r.\\r``, mixtures). Ingress must refuse it (550 5.6.0) and
the sink must never see the smuggled recipient. A canary sent afterwards,
whose content holds lines that look like an end of data once unstuffed, must
arrive intact: delivery re-stuffs dots and sends CRLF.
"""

from __future__ import annotations

import smtplib
import socket
from pathlib import Path

import pytest

from tests.e2e.conftest import relay_sections, running_relay
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.net import free_port
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e
SINK_IP = "127.0.0.2"
SMUGGLED = (
    b"MAIL FROM:<smuggler@evil.test>\r\nRCPT TO:<smuggled@ok.test>\r\nDATA\r\n"
    b"Subject: smuggled\r\n\r\nsmuggled\r\n"
)
ENDINGS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r\n.\r", b"\n..\n"]


def submit_raw(port: int, payload: bytes) -> list[int]:
    """One pipelined session; the reply codes in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        stream = sock.makefile("rb")
        sock.sendall(
            b"EHLO smuggler.test\r\nMAIL FROM:<sender@example.org>\r\n"
            b"RCPT TO:<victim@ok.test>\r\nDATA\r\n" + payload + b"QUIT\r\n"
        )
        codes: list[int] = []
        while not codes or codes[-1] != 221:
            line = stream.readline()
            if not line:
                break
            if line[3:4] != b"-":
                codes.append(int(line[:3]))
        return codes


def test_smuggling_payloads_never_reach_a_sink_as_a_second_message(tmp_path: Path) -> None:
    with DnsServer() as dns:
        dns.add_mx("ok.test", 10, "mx.ok.test")
        dns.add_a("mx.ok.test", SINK_IP)
        port = free_port(SINK_IP)
        with SmtpSink(host=SINK_IP, port=port) as sink:
            sections = relay_sections(new_namespace(), dns, port)
            with running_relay(tmp_path, sections) as relay:
                for ending in ENDINGS:
                    payload = b"Subject: first\r\n\r\nfirst" + ending + SMUGGLED + b".\r\n"
                    codes = submit_raw(relay.smtp_port, payload)
                    assert codes == [220, 250, 250, 250, 354, 550, 221], (ending, codes)
                canary = b"Subject: canary\r\n\r\n.\r\n..\r\n.MAIL FROM:<x@evil.test>\r\nend\r\n"
                with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=10) as smtp:
                    smtp.sendmail("sender@example.org", ["canary@ok.test"], canary)
                [message] = sink.wait_for(1, 30)
    assert message.rcpt_tos == ("canary@ok.test",)
    assert message.data.endswith(b"\r\n\r\n.\r\n..\r\n.MAIL FROM:<x@evil.test>\r\nend\r\n")
    assert b"\r\n" in message.data and b"\n" not in message.data.replace(b"\r\n", b"")
    assert len(sink.messages) == 1, [m.rcpt_tos for m in sink.messages]
    assert not any(b"smuggled" in m.data for m in sink.messages)
