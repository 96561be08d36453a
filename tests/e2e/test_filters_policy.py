"""Policy filters end to end: a refused attachment, a disclaimer, hostile MIME.

One relay (``postline run``) with ``chain = ["headers", "attachments",
"disclaimer"]``; mail from ``@ok.test`` so the DSNs reach the same sink.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from tests.e2e.conftest import relay_sections, running_relay
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.relay import RelayProcess, eventually
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e

SENDER = "mary@ok.test"
DISCLAIMER = "Ok Ltd, registered in Testland. This message is confidential."
HTML = "<p>Ok Ltd. Confidential.</p>"


@pytest.fixture(scope="module")
def policy_relay(
    tmp_path_factory: pytest.TempPathFactory, dns: DnsServer, sink: SmtpSink, smtp_port: int
) -> Iterator[RelayProcess]:
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["filter"] = {
        "chain": ["headers", "attachments", "disclaimer"],
        "disclaimer": {"text": DISCLAIMER, "html": HTML},
    }
    with running_relay(tmp_path_factory.mktemp("relay"), sections) as process:
        yield process


def compose(test_id: str, rcpt: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Mary <{SENDER}>"
    mail["To"] = rcpt
    mail["Subject"] = f"policy {test_id}"
    mail["X-Test-Id"] = test_id
    mail.set_content("Hello John,\n\nthe report.\n")
    mail.add_alternative("<html><body><p>Hello John,</p></body></html>\n", subtype="html")
    return mail


def send(relay: RelayProcess, data: bytes, rcpt: str) -> None:
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=30) as client:
        client.ehlo("client.test")
        assert client.sendmail(SENDER, [rcpt], data) == {}


def as_bytes(mail: EmailMessage) -> bytes:
    return mail.as_bytes(policy=mail.policy.clone(linesep="\r\n"))


def stored(sink: SmtpSink, marker: bytes) -> list[bytes]:
    return [m.data for m in list(sink.messages) if marker in m.data]


def failure_lines(relay: RelayProcess, rcpt: str) -> list[dict[str, object]]:
    return [line for line in relay.trail("failure") if line.get("recipient") == rcpt]


def test_a_refused_attachment_gives_a_failure_line_naming_it_and_a_dsn(
    policy_relay: RelayProcess, sink: SmtpSink
) -> None:
    test_id, rcpt = uuid.uuid4().hex, f"john-{uuid.uuid4().hex[:8]}@ok.test"
    mail = compose(test_id, rcpt)
    mail.add_attachment(b"MZ\x90\x00", maintype="application", subtype="octet-stream",
                        filename="invoice.exe")  # fmt: skip
    send(policy_relay, as_bytes(mail), rcpt)
    eventually(lambda: failure_lines(policy_relay, rcpt), 30, "the failure trail line")
    [line] = failure_lines(policy_relay, rcpt)
    assert line["kind"] == "rejected" and line["service"] == "filter"
    assert line["reason"] == (
        "rejected by filter attachments: attachment 'invoice.exe': extension .exe is blocked"
    )
    assert line["reply"] == {
        "code": 552, "enhanced": "5.7.0", "text": "Attachment type not allowed: 'invoice.exe'"
    }  # fmt: skip
    eventually(lambda: stored(sink, b"Final-Recipient: rfc822; " + rcpt.encode()), 30, "the DSN")
    [dsn] = stored(sink, b"Final-Recipient: rfc822; " + rcpt.encode())
    assert b"invoice.exe" in dsn and b"Status: 5.7.0" in dsn
    assert not stored(sink, f"X-Test-Id: {test_id}\r\n\r\n".encode())  # never delivered


def test_a_disclaimer_is_added_once_per_body_part_and_the_result_is_valid_mime(
    policy_relay: RelayProcess, sink: SmtpSink
) -> None:
    test_id, rcpt = uuid.uuid4().hex, f"john-{uuid.uuid4().hex[:8]}@ok.test"
    send(policy_relay, as_bytes(compose(test_id, rcpt)), rcpt)
    marker = f"X-Test-Id: {test_id}".encode()
    eventually(lambda: stored(sink, marker), 30, "the message at the sink")
    [data] = stored(sink, marker)
    mail = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(mail, EmailMessage)
    assert mail.get_all("X-Postline-Disclaimer") == ["added"]
    for part in mail.walk():
        assert not part.defects, part.defects
    plain, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().count(DISCLAIMER) == 1
    assert html.get_content().count(HTML) == 1 and html.get_content().index(HTML) < (
        html.get_content().index("</body>")
    )


def nested_multiparts(depth: int, test_id: str) -> bytes:
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
        for i in range(depth)
    )
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth + 1)))
    head = f"From: {SENDER}\r\nSubject: deep\r\nX-Test-Id: {test_id}\r\nMIME-Version: 1.0\r\n"
    return head.encode() + b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n" + opening + closing


BROKEN = (
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable"
    b"\r\n\r\nbroken =ZZ qp =\r\n=C3\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBER!!i0x*Lj==cK===\r\n--b--\r\n"
)


def test_hostile_mime_is_refused_without_stopping_other_mail(
    policy_relay: RelayProcess, sink: SmtpSink
) -> None:
    deep_rcpt = f"deep-{uuid.uuid4().hex[:8]}@ok.test"
    send(policy_relay, nested_multiparts(1000, uuid.uuid4().hex), deep_rcpt)
    huge_line = (
        f"From: {SENDER}\r\nX-Junk: ".encode() + b"a" * (20 * 1024 * 1024) + b"\r\n\r\nx\r\n"
    )
    with (
        smtplib.SMTP("127.0.0.1", policy_relay.smtp_port, timeout=60) as client,
        pytest.raises(smtplib.SMTPException) as refused,
    ):
        client.sendmail(SENDER, [deep_rcpt], huge_line)
    code = getattr(refused.value, "smtp_code", 0)
    assert 500 <= code < 600  # ingress refuses it before the queue
    started = time.monotonic()
    broken_id, rcpt = uuid.uuid4().hex, f"john-{uuid.uuid4().hex[:8]}@ok.test"
    broken = f"From: {SENDER}\r\nTo: {rcpt}\r\nX-Test-Id: {broken_id}\r\n".encode() + BROKEN
    send(policy_relay, broken, rcpt)
    eventually(lambda: stored(sink, f"X-Test-Id: {broken_id}".encode()), 30, "the broken one")
    assert time.monotonic() - started < 30
    eventually(lambda: failure_lines(policy_relay, deep_rcpt), 30, "the refusal of the deep one")
    [line] = failure_lines(policy_relay, deep_rcpt)
    assert line["reason"] == "rejected by filter attachments: MIME nesting deeper than 30"
    assert isinstance(line["reply"], dict) and line["reply"]["enhanced"] == "5.6.0"
