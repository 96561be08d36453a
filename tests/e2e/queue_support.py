"""Helpers of the ``postline queue`` end-to-end tests (``test_queue_*.py``).

* ``FixableSink``: the test sink, except that RCPT for a domain in ``broken``
  gets ``451 4.4.2 Down for maintenance`` until the test removes it ("the
  destination is back").
* ``BreakWhileFlagged``: a filter (``tests.e2e.queue_support:BreakWhileFlagged``
  in ``[filter] chain``) that raises for a message whose ``X-Test-Break-While``
  header names a file that exists, so the broker parks it after ``[broker]
  delivery_limit`` deliveries; once the file is gone the message passes.
* ``queue(relay, *args)``: ``postline --config FILE queue ARGS`` as a child
  process, as the operator runs it.
* ``submit``, ``message_of``, ``recipient_of``, ``wait_message``: send one
  message and follow it in the audit API.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import subprocess
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP, Envelope, Session

from postline.filter.api import Decision
from tests.support.relay import RelayProcess, child_env, eventually, postline_argv
from tests.support.sink import SmtpSink, _Handler
from tests.support.trace_cli import Json, messages_for

if TYPE_CHECKING:
    from postline.filter.message import FilterMessage
    from postline.filter.settings import FilterSettings

MAINTENANCE = "451 4.4.2 Down for maintenance"
BREAK_HEADER = "X-Test-Break-While"
ACTION_WAIT = 20


class _Fixable(_Handler):
    sink: FixableSink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.rpartition("@")[2].lower() in self.sink.broken:
            self.sink._record_attempt(address, 451)
            return MAINTENANCE
        return await super().handle_RCPT(server, session, envelope, address, options)


class FixableSink(SmtpSink):
    """``SmtpSink`` whose ``broken`` domains answer ``MAINTENANCE`` at RCPT (module docstring)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.broken: set[str] = set()

    def start(self) -> None:
        super().start()
        assert self._controller is not None
        self._controller.handler = _Fixable(self)  # each new session uses it

    def __enter__(self) -> FixableSink:
        self.start()
        return self

    def stored_for(self, rcpt: str) -> list[bytes]:
        return [m.data for m in list(self.messages) if rcpt in m.rcpt_tos]

    def dsns_to(self, sender: str) -> list[str]:
        """The DSNs (null sender) stored for ``sender``, as text."""
        return [
            m.data.decode(errors="replace")
            for m in list(self.messages)
            if m.rcpt_tos == (sender,) and m.mail_from in ("", "<>")
        ]


class BreakWhileFlagged:
    """Raise while the file named by the ``X-Test-Break-While`` header exists."""

    name = "break-while-flagged"

    def __init__(self, settings: FilterSettings) -> None:
        self.settings = settings

    async def apply(self, message: FilterMessage) -> Decision:
        flag = (message.headers.get(BREAK_HEADER) or "").strip()
        broken: bool = bool(flag) and await asyncio.to_thread(os.path.isfile, flag)
        if broken:
            raise RuntimeError(f"{BREAK_HEADER}: {flag} exists")
        return Decision.proceed()


def queue(
    relay: RelayProcess, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``postline --config FILE queue ARGS`` as a child process (text, exit code); an
    action waits ``ACTION_WAIT`` s at most for its requests (not the CLI's 60 s)."""
    if args and args[0] != "list" and "--wait" not in args:
        args = (*args, "--wait", str(ACTION_WAIT))
    result = subprocess.run(
        postline_argv(relay.config_path, "queue", *args),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    print(
        f"$ postline queue {' '.join(args)}  -> {result.returncode}\n{result.stdout}{result.stderr}"
    )
    return result


def submit(
    relay: RelayProcess, sender: str, rcpt: str, *headers: str, notify: str | None = None
) -> None:
    """One message from ``sender`` to ``rcpt`` (``NOTIFY=`` if given), accepted with 250."""
    head = "".join(f"{h}\r\n" for h in headers)
    body = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: queue e2e\r\n{head}\r\nhello\r\n"
    with smtplib.SMTP("127.0.0.1", relay.smtp_port, timeout=15) as client:
        client.ehlo("client.test")
        assert client.mail(sender)[0] == 250
        assert client.rcpt(rcpt, [f"NOTIFY={notify}"] if notify else [])[0] == 250
        assert client.data(body.encode())[0] == 250


def unique(prefix: str = "q") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def message_of(relay: RelayProcess, rcpt: str) -> Json | None:
    """The API's newest message for ``rcpt`` (None if it has none yet)."""
    found = messages_for(relay, rcpt=rcpt)
    return found[0] if found else None


def recipient_of(message: Json | None) -> Json:
    if not message or not message.get("recipients"):
        return {}
    first: Json = message["recipients"][0]
    return first


def wait_message(
    relay: RelayProcess,
    rcpt: str,
    predicate: Callable[[Json], bool],
    what: str,
    timeout: float = 30,
) -> Json:
    """The API's message for ``rcpt`` once ``predicate`` holds for it."""
    seen: list[Json] = []

    def holds() -> bool:
        message = message_of(relay, rcpt)
        seen[:] = [message] if message else []
        return message is not None and predicate(message)

    try:
        eventually(holds, timeout, f"{what} ({rcpt})")
    except AssertionError as error:
        raise AssertionError(f"{error}; last seen: {seen}") from None
    return seen[0]


def events_of(message: Json, kind: str) -> list[Json]:
    return [e for e in message.get("events") or [] if e.get("kind") == kind]
