"""A header folded over a million lines must not freeze a running relay (issue 7, section 4).

A ``postline run`` process whose ingress lets any header section through
(``max_header_size = 0``, ``max_header_lines = 0``) takes a 4 MB message whose
``Subject`` is folded over a million short lines. Meanwhile another client
connects again and again and times the SMTP greeting, and an ordinary message
is submitted: every greeting must come within ``GREETING_BOUND``, the ordinary
message must reach the sink, and the filter must refuse the hostile one for
good (``554 5.6.0`` in the failure trail) instead of parsing it forever.
"""

from __future__ import annotations

import contextlib
import math
import smtplib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.e2e.conftest import cleanup, relay_sections
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.relay import RelayProcess, deep_merge, eventually
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.e2e

GREETING_BOUND = 1.0
FOLDED_LINES = 1_000_000
SENDER = "hostile-sender@ok.test"


@contextlib.contextmanager
def relay_process(workdir: Path, sections: dict[str, Any]) -> Iterator[RelayProcess]:
    """``running_relay``, except that a relay whose test failed is killed, not stopped.

    A relay frozen by the message under test would not honour SIGTERM within
    the grace period, and that second failure would hide the first.
    """
    process = RelayProcess(workdir, sections)
    process.start()
    try:
        yield process
    except BaseException:
        if process.process is not None:
            process.process.kill()
            process.process.wait()
        cleanup(process)
        raise
    code = process.stop()
    cleanup(process)
    assert code == 0, f"relay exited with {code}:\n{process.logs()[-3000:]}"


class GreetingProbe:
    """A thread that connects to ``port`` again and again and records each greeting's delay.

    A greeting that does not come within ``2 * bound`` (or is not a ``220``) is
    recorded as ``inf``; ``froze`` says whether any took longer than ``bound``.
    """

    def __init__(self, port: int, bound: float) -> None:
        self.port = port
        self.bound = bound
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="greeting-probe", daemon=True)

    @property
    def froze(self) -> bool:
        """Some greeting took longer than ``bound`` (or never came)."""
        return max(self.samples, default=0.0) > self.bound

    def report(self) -> str:
        worst = max(self.samples, default=0.0)
        took = f"{worst:.2f}s" if worst < math.inf else f"over {2 * self.bound:g}s (none came)"
        return f"an SMTP greeting took {took}; bound {self.bound:g}s, {len(self.samples)} tries"

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._greeting_delay())
            self._stop.wait(0.05)

    def _greeting_delay(self) -> float:
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", self.port), 2 * self.bound) as conn:
                line = conn.makefile("rb").readline()
                delay = time.monotonic() - started
                conn.sendall(b"QUIT\r\n")
        except OSError:  # includes the timeout
            return math.inf
        return delay if line.startswith(b"220") else math.inf

    def __enter__(self) -> GreetingProbe:
        self._thread.start()
        eventually(lambda: len(self.samples) >= 3, 10, "the first greetings")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(10)


def hostile_message(rcpt: str) -> bytes:
    """4 MB: one ``Subject`` folded over ``FOLDED_LINES`` lines of one letter each."""
    head = f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: folded\r\n".encode()
    return head + b" x\r\n" * FOLDED_LINES + b"\r\nbody\r\n"


def ordinary_message(rcpt: str, test_id: str) -> bytes:
    return (
        f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: ordinary\r\n"
        f"X-Test-Id: {test_id}\r\n\r\nhello\r\n"
    ).encode()


def send(port: int, rcpt: str, data: bytes) -> tuple[int, bytes]:
    """One SMTP transaction; the reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("client.test")
        client.mail(SENDER)
        code, text = client.rcpt(rcpt)
        if code != 250:
            return code, text
        return client.data(data)


class Submissions:
    """In a thread: the hostile message, then (once it is queued) the ordinary one."""

    def __init__(self, port: int, hostile_rcpt: str, ordinary_rcpt: str, test_id: str) -> None:
        self.port = port
        self.jobs = [
            (hostile_rcpt, hostile_message(hostile_rcpt)),
            (ordinary_rcpt, ordinary_message(ordinary_rcpt, test_id)),
        ]
        self.replies: list[tuple[int, bytes] | BaseException] = []
        self.thread = threading.Thread(target=self._run, name="submissions", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for rcpt, data in self.jobs:
            try:
                self.replies.append(send(self.port, rcpt, data))
            except (OSError, smtplib.SMTPException) as error:
                self.replies.append(error)

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()


def failure_replies(relay: RelayProcess, rcpt: str) -> list[object]:
    return [line.get("reply") for line in relay.trail("failure") if line.get("recipient") == rcpt]


def test_a_header_folded_over_a_million_lines_delays_no_greeting_and_no_other_message(
    tmp_path: Path, dns: DnsServer, sink: SmtpSink, smtp_port: int
) -> None:
    sections = deep_merge(
        relay_sections(new_namespace(), dns, smtp_port),
        {"ingress": {"max_header_size": 0, "max_header_lines": 0}},
    )
    hostile_rcpt = f"hostile-{uuid.uuid4().hex[:8]}@ok.test"
    ordinary_rcpt = f"ordinary-{uuid.uuid4().hex[:8]}@ok.test"
    test_id = uuid.uuid4().hex

    def ordinary_delivered() -> bool:
        return any(f"X-Test-Id: {test_id}".encode() in m.data for m in list(sink.messages))

    with (
        relay_process(tmp_path, sections) as relay,
        GreetingProbe(relay.smtp_port, GREETING_BOUND) as probe,
    ):
        submissions = Submissions(relay.smtp_port, hostile_rcpt, ordinary_rcpt, test_id)
        eventually(lambda: probe.froze or submissions.done, 90, "both submissions")
        assert not probe.froze, probe.report()
        assert [_code(reply) for reply in submissions.replies] == [250, 250], submissions.replies

        def settled() -> bool:
            return ordinary_delivered() and bool(failure_replies(relay, hostile_rcpt))

        eventually(lambda: probe.froze or settled(), 60, "delivery and the filter's refusal")
        assert not probe.froze, probe.report()
        [refused] = failure_replies(relay, hostile_rcpt)
        assert isinstance(refused, dict)
        assert (refused["code"], refused["enhanced"]) == (554, "5.6.0")


def _code(reply: tuple[int, bytes] | BaseException) -> int | str:
    return repr(reply) if isinstance(reply, BaseException) else reply[0]
