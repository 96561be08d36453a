"""A misbehaving SMTP remote for delivery tests: one mode per wrong reply, at every phase.

``Remote(host, port, mode)`` is an asyncio server on the test's loop (loopback only).
It speaks plain SMTP (greeting, EHLO, STARTTLS when the mode offers it, MAIL,
RCPT, DATA, the message up to the final dot, RSET, NOOP, QUIT) with standard
replies, except where its ``Mode`` says otherwise:

* a field holds the raw bytes written in reply to that step (``greeting``,
  ``ehlo``, ``starttls``, ``mail``, ``rcpt``, ``data``, ``end`` for the final
  dot, ``rset``), so a mode can send a wrong code, a multi-line reply with
  mixed codes, an enhanced code of another class, a malformed line, or two
  replies in one write;
* ``hangup`` names the step whose reply is replaced by closing the connection
  (``"greeting"``: no greeting at all; ``"rcpt-partial"``: half a multi-line
  reply to RCPT first; ``"end-silent"``: no reply after the final dot, the
  session just waits for the client to give up);
* ``late`` is written in a separate write after the end-of-data reply (a
  second reply that arrives on its own);
* ``early``: the replies to MAIL, RCPT and DATA all go out when MAIL arrives
  (a server that pipelines replies before the commands were sent); RCPT and
  DATA are then taken without another reply;
* ``rset_early``: the end-of-data reply is followed by the reply to an RSET the
  client has not sent yet, and the RSET, when it comes, is not answered.

Two modes differ only in the extensions the EHLO reply announces: ``plain``
(SIZE only: no 8BITMIME, no SMTPUTF8, no DSN) and ``dsn`` (8BITMIME, SIZE,
SMTPUTF8 and DSN), for what a client must adapt to what a server offers.

The message is read after a ``354`` sent for the DATA command (or, in early mode,
after DATA). ``messages`` holds every message taken up to its final dot
(dot-unstuffed), whatever the reply; ``connections`` counts sessions, ``commands``
lists every command line received. ``MODES`` names every mode the tests use; each
wrong reply carries a distinctive ``words-...`` text, so a test can check that the
remote's words reach the trails.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

_EHLO = b"250-remote.test hello\r\n250-8BITMIME\r\n250-SIZE 10485760\r\n250 SMTPUTF8\r\n"


@dataclass(frozen=True)
class Mode:
    """What the remote writes at each step (module docstring)."""

    greeting: bytes = b"220 remote.test ESMTP\r\n"
    ehlo: bytes = _EHLO
    starttls: bytes | None = None  # None: STARTTLS not offered
    mail: bytes = b"250 2.1.0 sender ok\r\n"
    rcpt: bytes = b"250 2.1.5 recipient ok\r\n"
    data: bytes = b"354 go ahead\r\n"
    end: bytes = b"250 2.0.0 stored\r\n"
    rset: bytes = b"250 2.0.0 reset\r\n"
    hangup: str | None = None
    late: bytes | None = None
    early: bool = False
    rset_early: bool = False


def _offering_starttls(reply: bytes) -> Mode:
    ehlo = b"250-remote.test hello\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
    return Mode(ehlo=ehlo, starttls=reply)


MODES: dict[str, Mode] = {
    "well-behaved": Mode(),
    "plain": Mode(ehlo=b"250-remote.test hello\r\n250 SIZE 10485760\r\n"),
    "dsn": Mode(ehlo=_EHLO.replace(b"250 SMTPUTF8", b"250-SMTPUTF8\r\n250 DSN")),
    # greeting
    "greeting-250": Mode(greeting=b"250 remote.test words-greeting\r\n"),
    "greeting-mixed": Mode(greeting=b"220-remote.test hi\r\n554 words-greeting-mixed\r\n"),
    "greeting-long": Mode(greeting=b"220 words-long" + b"x" * 9000 + b"\r\n"),
    # EHLO
    "ehlo-220": Mode(ehlo=b"220 words-ehlo\r\n"),
    "ehlo-354": Mode(ehlo=b"354 words-ehlo\r\n"),
    "ehlo-extra": Mode(ehlo=_EHLO + b"250 words-extra\r\n"),
    # STARTTLS (the tests require TLS, so a wrong reply cannot fall back to plaintext)
    "starttls-250": _offering_starttls(b"250 words-starttls\r\n"),
    "starttls-mixed": _offering_starttls(b"220-ready\r\n250 words-starttls-mixed\r\n"),
    # MAIL
    "mail-252": Mode(mail=b"252 2.1.0 words-mail\r\n"),
    "mail-354": Mode(mail=b"354 words-mail\r\n"),
    "mail-class": Mode(mail=b"250 5.1.0 words-mail-class\r\n"),
    # RCPT
    "rcpt-252": Mode(rcpt=b"252 2.1.5 words-rcpt\r\n"),
    "rcpt-354": Mode(rcpt=b"354 words-rcpt\r\n"),
    "rcpt-mixed": Mode(rcpt=b"250-2.1.5 words-rcpt-mixed\r\n550 5.1.1 no such user\r\n"),
    "rcpt-class": Mode(rcpt=b"550 2.0.0 words-rcpt-class\r\n"),
    "rcpt-malformed": Mode(rcpt=b"25 words-malformed\r\n"),
    "rcpt-no-space": Mode(rcpt=b"250words-no-space\r\n"),
    # DATA command
    "data-250": Mode(data=b"250 2.0.0 words-data\r\n"),
    "data-220": Mode(data=b"220 words-data\r\n"),
    # end of data
    "end-354": Mode(end=b"354 words-end\r\n"),
    "end-mixed": Mode(end=b"550-5.7.1 words-end-mixed\r\n250 2.0.0 ok\r\n"),
    "end-class": Mode(end=b"250 5.7.1 words-end-class\r\n"),
    # out of step
    "early": Mode(early=True),
    "double-reply": Mode(end=b"250 2.0.0 stored\r\n250 2.0.0 words-extra\r\n"),
    "double-reply-late": Mode(late=b"250 2.0.0 words-extra\r\n"),
    "rset-early": Mode(rset_early=True),
    # hang-ups
    "hangup-greeting": Mode(hangup="greeting"),
    "hangup-ehlo": Mode(hangup="ehlo"),
    "hangup-mail": Mode(hangup="mail"),
    "hangup-rcpt": Mode(hangup="rcpt"),
    "hangup-rcpt-partial": Mode(hangup="rcpt-partial"),
    "hangup-data": Mode(hangup="data"),
    "hangup-end": Mode(hangup="end"),
    # silence after the final dot (for the end-of-data timeout)
    "end-silent": Mode(hangup="end-silent"),
}

_LATE_PAUSE = 0.01  # the late reply must leave in its own segment, well before the next use
_CLOSE_WAIT = 5.0


class _Hangup(Exception):
    """Close the session now, without a reply."""


class Remote:
    """See the module docstring. ``async with Remote(host, port, "rcpt-252") as remote:``."""

    def __init__(self, host: str, port: int, mode: str | Mode) -> None:
        self.host, self.port = host, port
        self.mode = MODES[mode] if isinstance(mode, str) else mode
        self.connections = 0
        self.commands: list[str] = []
        self.messages: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Remote:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()  # every session's next read ends: no task is cancelled mid-write
        if self._sessions:
            await asyncio.wait(set(self._sessions), timeout=_CLOSE_WAIT)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            await _Session(self, reader, writer).run()
        except (_Hangup, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._sessions.discard(task)
            self._writers.discard(writer)
            writer.close()


class _Session:
    """One SMTP session of a ``Remote``."""

    def __init__(
        self, remote: Remote, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.remote, self.mode = remote, remote.mode
        self.reader, self.writer = reader, writer
        self.answered_early = False
        self.skip_rset = False

    async def say(self, step: str, data: bytes) -> None:
        if self.mode.hangup == step:
            raise _Hangup
        self.writer.write(data)
        await self.writer.drain()

    async def run(self) -> None:
        await self.say("greeting", self.mode.greeting)
        while line := await self.reader.readline():
            command = line.decode("utf-8", "replace").rstrip("\r\n")
            self.remote.commands.append(command)
            await self.answer(command.upper())

    async def answer(self, command: str) -> None:
        if command.startswith(("EHLO", "HELO")):
            await self.say("ehlo", self.mode.ehlo)
        elif command == "STARTTLS" and self.mode.starttls is not None:
            await self.say("starttls", self.mode.starttls)
        elif command.startswith("MAIL"):
            await self.mail()
        elif command.startswith("RCPT"):
            await self.rcpt()
        elif command == "DATA":
            await self.data()
        elif command == "RSET":
            await self.rset()
        elif command == "QUIT":
            await self.say("quit", b"221 2.0.0 bye\r\n")
            raise _Hangup
        else:
            await self.say("other", b"250 2.0.0 ok\r\n")

    async def mail(self) -> None:
        if self.mode.early:
            self.answered_early = True
            await self.say("mail", self.mode.mail + self.mode.rcpt + self.mode.data)
        else:
            await self.say("mail", self.mode.mail)

    async def rcpt(self) -> None:
        if self.mode.hangup == "rcpt-partial":
            self.writer.write(b"250-2.1.5 half of a rep")
            await self.writer.drain()
            raise _Hangup
        if not self.answered_early:
            await self.say("rcpt", self.mode.rcpt)

    async def data(self) -> None:
        if self.answered_early:
            self.answered_early = False
        else:
            await self.say("data", self.mode.data)
            if not self.mode.data.startswith(b"354"):
                return
        self.remote.messages.append(await self.message())
        if self.mode.hangup == "end-silent":
            await self.reader.read()  # never answer; wait for the client to give up
            raise _Hangup
        end = self.mode.end
        if self.mode.rset_early:
            end += b"250 2.0.0 words-early reset\r\n"
            self.skip_rset = True
        await self.say("end", end)
        if self.mode.late is not None:
            await asyncio.sleep(_LATE_PAUSE)
            await self.say("late", self.mode.late)

    async def rset(self) -> None:
        if self.skip_rset:
            self.skip_rset = False
            return
        await self.say("rset", self.mode.rset)

    async def message(self) -> bytes:
        lines: list[bytes] = []
        while (line := await self.reader.readuntil(b"\r\n")) != b".\r\n":
            lines.append(line[1:] if line.startswith(b".") else line)
        return b"".join(lines)
