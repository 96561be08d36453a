"""The ledger oracle of reliability.md: every accepted message must end somewhere.

Each test message carries a unique ``X-Test-Id``. The ledger records which ids
ingress accepted with ``250``; at the end they are compared with what the sinks
stored, what the failure trail recorded and what was parked.
``lost = accepted - (delivered | failed | parked)`` must be empty; duplicates are
counted (at-least-once allows a few, only from a crash after a remote 250).
"""

from __future__ import annotations

import re
import smtplib
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.support.sink import Received

TEST_ID = re.compile(rb"^X-Test-Id: ([0-9a-f]{32})\r?$", re.MULTILINE)


@dataclass
class Ledger:
    """Thread-safe record of submissions and their replies."""

    accepted: dict[str, str] = field(default_factory=dict)  # test id -> recipient
    refused: Counter[int] = field(default_factory=Counter)  # reply code -> count
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, port: int, rcpt: str, mail_from: str = "ledger@example.org") -> None:
        """One SMTP transaction; records 250 as accepted, anything else as refused/error."""
        test_id = uuid.uuid4().hex
        body = (
            f"From: {mail_from}\r\nTo: {rcpt}\r\nSubject: ledger\r\nX-Test-Id: {test_id}\r\n"
            "\r\n" + ("x" * 76 + "\r\n") * 50
        ).encode()
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
                client.sendmail(mail_from, [rcpt], body)
        except smtplib.SMTPResponseException as error:
            with self._lock:
                self.refused[error.smtp_code] += 1
            return
        except (OSError, smtplib.SMTPException):
            with self._lock:
                self.errors += 1
            return
        with self._lock:
            self.accepted[test_id] = rcpt

    def reconcile(self, stored: Iterable[Received], failed_recipients: set[str]) -> Report:
        seen = Counter(
            match.group(1).decode()
            for message in stored
            for match in TEST_ID.finditer(message.data)
        )
        accepted = dict(self.accepted)
        delivered = {tid for tid in accepted if seen[tid]}
        failed = {tid for tid, rcpt in accepted.items() if rcpt in failed_recipients}
        return Report(
            accepted=len(accepted),
            lost=sorted(set(accepted) - delivered - failed),
            duplicates=sum(count - 1 for tid, count in seen.items() if count > 1),
            unknown=sorted(set(seen) - set(accepted)),
        )


@dataclass(frozen=True)
class Report:
    accepted: int
    lost: list[str]
    duplicates: int
    unknown: list[str]
