"""A broker that stalls mid-load, proven with the ledger oracle.

The whole relay reaches RabbitMQ through a ``StallProxy``, which stops
forwarding for a few seconds (past ``publish_timeout``) while six clients
submit. Clients behave as SMTP clients do: a ``4xx`` to the final dot means
"send the same message again later". The ledger then proves:

* every message answered ``250`` is delivered (0 lost);
* a message reaches the sink twice only if ingress told its client that the
  outcome was unknown (``451 4.3.0 Queueing not confirmed in time ...``): no
  duplicate comes from a "not queued" answer, from filter, or from delivery;
* every delivered message has its ``received`` line in the queue trail, the
  late ones with the "may arrive twice" reason.
"""

from __future__ import annotations

import smtplib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import relay_sections, running_relay
from tests.e2e.test_no_loss import settle, under_load
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.ledger import TEST_ID, Ledger
from tests.support.relay import RelayProcess, eventually
from tests.support.sink import SmtpSink
from tests.support.stall_proxy import StallProxy

pytestmark = pytest.mark.e2e
UNCONFIRMED_TEXT = b"may have been queued"
STALL_SECONDS = 2.5  # past publish_timeout (1 s), well inside the bus's 5 s bound
RETRIES = 20
LATE_REASON = "may arrive twice"


@dataclass
class RetryingLedger(Ledger):
    """A ledger whose clients resend the same message (same ``X-Test-Id``) after a 4xx."""

    told_unconfirmed: Counter[str] = field(default_factory=Counter)
    told_not_queued: Counter[str] = field(default_factory=Counter)

    def submit(self, port: int, rcpt: str, mail_from: str = "ledger@example.org") -> None:
        test_id = uuid.uuid4().hex
        body = (
            f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: stall\r\nX-Test-Id: {test_id}\r\n"
            "\r\n" + ("x" * 76 + "\r\n") * 50
        ).encode()
        for _ in range(RETRIES):
            if self._once(port, rcpt, mail_from, body, test_id):
                return
            time.sleep(0.2)

    def _once(self, port: int, rcpt: str, mail_from: str, body: bytes, test_id: str) -> bool:
        """One transaction; True when the message needs no resending."""
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
                client.sendmail(mail_from, [rcpt], body)
        except smtplib.SMTPDataError as error:
            with self._lock:
                self.refused[error.smtp_code] += 1
                unconfirmed = UNCONFIRMED_TEXT in error.smtp_error
                (self.told_unconfirmed if unconfirmed else self.told_not_queued)[test_id] += 1
            return error.smtp_code >= 500
        except (OSError, smtplib.SMTPException):
            with self._lock:
                self.errors += 1
            return False
        with self._lock:
            self.accepted[test_id] = rcpt
        return True


@pytest.fixture
def proxy() -> Iterator[StallProxy]:
    with StallProxy() as running:
        yield running


def test_broker_stall_under_load_loses_nothing_and_duplicates_only_unconfirmed_replies(
    tmp_path: Path, dns: DnsServer, sink: SmtpSink, smtp_port: int, proxy: StallProxy
) -> None:
    sections = relay_sections(new_namespace(), dns, smtp_port)
    sections["broker"].update(url=proxy.url, publish_timeout="1s")
    ledger = RetryingLedger()
    before = len(sink.messages)
    with running_relay(tmp_path, sections) as relay:

        def stall() -> None:
            proxy.stall()
            time.sleep(STALL_SECONDS)  # a stall of a known length, not a wait for a condition
            proxy.resume()

        under_load(relay, ledger, 120, stall)
        report = settle(relay, ledger, sink, 60)
        stored = list(sink.messages)[before:]
        copies = Counter(m.group(1).decode() for s in stored for m in TEST_ID.finditer(s.data))
        twice = {tid: n for tid, n in copies.items() if n > 1}
        print(
            f"stall: accepted {report.accepted}, duplicates {report.duplicates}, "
            f"unconfirmed {sum(ledger.told_unconfirmed.values())}, "
            f"not queued {sum(ledger.told_not_queued.values())}, client errors {ledger.errors}"
        )
        assert report.lost == [], f"lost {len(report.lost)} of {report.accepted}"
        assert not set(ledger.told_not_queued) & set(copies) - set(ledger.accepted), (
            "a message answered 'not queued' was delivered anyway"
        )
        extra = {t: n for t, n in twice.items() if n - 1 > ledger.told_unconfirmed[t]}
        assert extra == {}, f"duplicates the client was not told about: {extra}"
        assert set(report.unknown) <= set(ledger.told_unconfirmed), report.unknown
        assert ledger.told_unconfirmed, "no client met the stall: the test proved nothing"
        eventually(lambda: not unreceived(relay), 30, "a received line for every delivered message")
        late = [line for line in received(relay).values() if LATE_REASON in str(line["reason"])]
        assert late, "no received line says the message was accepted after a retry answer"


def received(relay: RelayProcess) -> dict[object, dict[str, object]]:
    """The queue trail's ``received`` lines by message id."""
    return {line["message_id"]: line for line in relay.trail("queue") if line["kind"] == "received"}


def unreceived(relay: RelayProcess) -> set[object]:
    """Message ids in the success trail without a ``received`` line."""
    return {line["message_id"] for line in relay.trail("success")} - set(received(relay))
