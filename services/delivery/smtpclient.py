"""A strict SMTP client: aiosmtplib, with a reply reader that takes nothing on trust.

Why this module exists. The design card mandates aiosmtplib, but its public API
cannot give delivery what it needs to never record unaccepted mail as delivered:

* it takes a multi-line reply's code from its last line without checking the
  others, and reads ``25 ok`` as code 25 with the text ``k``;
* a second reply that arrived in the same packet stays in
  ``SMTPProtocol._buffer`` and is read as the reply to the *next* command, so a
  reused session reads every reply one step late (RCPT's 250 taken for DATA's);
* input that arrives while no command waits is silently dropped;
* ``SMTP.data()`` raises the same ``SMTPDataError`` for the DATA command's reply
  and for the end-of-data reply, with one timeout for both.

This is the ONE module that touches aiosmtplib internals. ``StrictProtocol``
(a subclass of ``aiosmtplib.protocol.SMTPProtocol``) replaces the reply reader:
every line is three digits (200-599) then SP, ``-`` or the end of the line, and
all lines of a reply carry the same code, else the read fails with
``ProtocolViolation`` (the remote's words, escaped). Bytes left unread after a
complete reply, and input while no reply is awaited, put the session *out of
step*: noted once (``out_of_step``), counted in
``postline_delivery_out_of_step_total``, never cleared. ``StrictSMTP`` (a
subclass of ``aiosmtplib.SMTP``) makes ``connect()`` use that protocol (TCP
connect within the connect timeout, the greeting within ``greeting_timeout``,
returned whatever its code: judging replies is ``trouble``'s job), refuses to
send a command, or to return its reply, while out of step, connects from
``source_address`` when one is given, and sends the
message itself apart from the DATA command (``send_message_data``: canonical
CRLF, dot-stuffing, written in blocks each within ``block_timeout``, then the
end-of-data reply within ``reply_timeout``). A reply read together with extra
input is still returned by ``send_message_data``: the caller records it and
closes the session.

Internals relied on, each pinned by ``tests/unit/delivery/test_smtpclient.py``
(and the aiosmtplib series by pyproject.toml), so an upgrade fails there first:
``SMTPProtocol._buffer``, ``_response_waiter``, ``_response_pending``,
``_command_lock``, ``_set_response_exception``, ``_drain_helper``,
``read_response``, ``write``, ``data_received`` and ``_read_response_from_buffer``
(both replaced); ``SMTP._create_connection`` (replaced: the hook where
``connect()`` makes its protocol), ``SMTP.protocol``, ``.transport``, ``.loop``,
``._on_connection_lost``; ``normalize_message_line_endings``, ``PERIOD_REGEX``,
``MAX_LINE_LENGTH``, ``MAX_RESPONSE_LENGTH``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Literal

import aiosmtplib
from aiosmtplib.protocol import (
    MAX_LINE_LENGTH,
    MAX_RESPONSE_LENGTH,
    PERIOD_REGEX,
    SMTPProtocol,
    normalize_message_line_endings,
)
from aiosmtplib.typing import Default

from postline.delivery import metrics
from postline.delivery.replies import escaped

_LINE = re.compile(rb"([2-5][0-9][0-9])([ -].*)?")
_BLOCK = 64 * 1024  # one write of the message; each must drain within block_timeout
_CLOSING = 421


class ProtocolViolation(aiosmtplib.SMTPException):
    """The remote broke SMTP's rules: ``what`` happened, ``words`` it sent (escaped).

    ``response`` is the reply that was read complete before the session was found
    out of step, if any (for the transcript: it is not to be trusted).
    """

    def __init__(
        self, what: str, words: str, response: aiosmtplib.SMTPResponse | None = None
    ) -> None:
        super().__init__(f"{what}: '{words}'")
        self.what = what
        self.words = words
        self.response = response


def words_of(data: bytes) -> str:
    """Raw reply bytes as words for trails: lines joined by `` / ``, escaped, cut."""
    text = data.decode("utf-8", "backslashreplace")
    return escaped(" / ".join(line for line in re.split(r"\r?\n", text) if line))


def _failed(waiter: asyncio.Future[aiosmtplib.SMTPResponse]) -> bool:
    return waiter.done() and (waiter.cancelled() or waiter.exception() is not None)


class StrictProtocol(SMTPProtocol):
    """``SMTPProtocol`` with the strict reply reader (module docstring)."""

    out_of_step: ProtocolViolation | None = None

    def data_received(self, data: bytes) -> None:
        waiter = self._response_waiter
        if waiter is None or _failed(waiter):
            return  # the connection is gone, or its last read failed: nothing reads any more
        if not self._response_pending or waiter.done():
            self._lose_step("input while no reply was awaited", data)
            return
        self._buffer.extend(data)
        if len(self._buffer) > MAX_RESPONSE_LENGTH:
            violation = ProtocolViolation(
                f"reply longer than {MAX_RESPONSE_LENGTH} bytes", words_of(bytes(self._buffer))
            )
            del self._buffer[:]
            self._set_response_exception(waiter, violation)
            return
        if b"\n" not in data:
            return  # a reply is complete only at the end of a line
        try:
            response = self._read_response_from_buffer()
        except ProtocolViolation as violation:
            del self._buffer[:]
            self._set_response_exception(waiter, violation)
        else:
            if response is not None:
                waiter.set_result(response)

    def _read_response_from_buffer(self) -> aiosmtplib.SMTPResponse | None:
        """The first complete reply in the buffer, or None; ``ProtocolViolation`` if malformed."""
        code = b""
        texts: list[bytes] = []
        offset = 0
        while (end := self._buffer.find(b"\n", offset)) != -1:
            line = bytes(self._buffer[offset : end + 1])
            offset = end + 1
            content = line.removesuffix(b"\n").removesuffix(b"\r")
            if len(line) > MAX_LINE_LENGTH:
                what = f"reply line longer than {MAX_LINE_LENGTH} bytes"
                raise ProtocolViolation(what, words_of(content))
            match = _LINE.fullmatch(content)
            if match is None:
                raise ProtocolViolation("malformed reply line", words_of(content))
            if code and match[1] != code:
                raise ProtocolViolation(
                    "reply lines with different codes", words_of(bytes(self._buffer[:offset]))
                )
            code = match[1]
            texts.append(content[4:].strip(b" \t"))
            if content[3:4] != b"-":
                del self._buffer[:offset]
                if self._buffer:
                    self._lose_step("input after a complete reply", bytes(self._buffer))
                message = b"\n".join(texts).decode("utf-8", "surrogateescape")
                return aiosmtplib.SMTPResponse(int(code), message)
        return None

    def _lose_step(self, what: str, data: bytes) -> None:
        if self.out_of_step is None:
            self.out_of_step = ProtocolViolation(what, words_of(data))
            metrics.OUT_OF_STEP.inc()

    async def send_message_data(
        self, message: bytes, block_timeout: float, reply_timeout: float
    ) -> aiosmtplib.SMTPResponse:
        """Send ``message`` (after DATA got 354) up to the final dot; the end-of-data reply."""
        if self._command_lock is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        data = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"
        async with self._command_lock:
            self._response_pending = True
            for start in range(0, len(data), _BLOCK):
                self.write(data[start : start + _BLOCK])
                await self._drained(block_timeout)
            return await self.read_response(timeout=reply_timeout)

    async def _drained(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._drain_helper(), timeout)
        except TimeoutError as error:
            raise aiosmtplib.SMTPTimeoutError("Timed out sending the message data") from error
        except ConnectionResetError as error:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost") from error


class StrictSMTP(aiosmtplib.SMTP):
    """``aiosmtplib.SMTP`` on a ``StrictProtocol`` (module docstring)."""

    def __init__(
        self,
        hostname: str,
        port: int,
        *,
        local_hostname: str,
        timeout: float,
        greeting_timeout: float,
        source_address: str | None = None,
    ) -> None:
        super().__init__(
            hostname=hostname,
            port=port,
            local_hostname=local_hostname,
            timeout=timeout,
            start_tls=False,
        )
        self.greeting_timeout = greeting_timeout
        self.bind_address = source_address  # the local address connected from (None: any)
        self.reached = False  # TCP connected: a failure after this is the greeting's
        self._strict: StrictProtocol | None = None

    @property
    def out_of_step(self) -> ProtocolViolation | None:
        """Why this session is out of step (unread or unsolicited input), or None."""
        return None if self._strict is None else self._strict.out_of_step

    @property
    def in_step(self) -> bool:
        return self.out_of_step is None

    def check_in_step(self, response: aiosmtplib.SMTPResponse | None = None) -> None:
        """Raise the ``ProtocolViolation`` that put the session out of step, if any."""
        if self.out_of_step is not None:
            raise ProtocolViolation(self.out_of_step.what, self.out_of_step.words, response)

    async def _create_connection(self, timeout: float | None) -> aiosmtplib.SMTPResponse:
        if self.loop is None:
            raise RuntimeError("No event loop set")
        host, port = self.hostname or "localhost", self.port or 25
        protocol = StrictProtocol(loop=self.loop, connection_lost_callback=self._on_connection_lost)
        local = (self.bind_address, 0) if self.bind_address else None
        connecting = self.loop.create_connection(
            lambda: protocol, host=host, port=port, local_addr=local
        )
        try:
            transport, _ = await asyncio.wait_for(connecting, timeout=timeout)
        except TimeoutError as error:
            message = f"Timed out connecting to {host} on port {port}"
            raise aiosmtplib.SMTPConnectTimeoutError(message) from error
        except OSError as error:
            message = f"Error connecting to {host} on port {port}: {error}"
            raise aiosmtplib.SMTPConnectError(message) from error
        self.protocol, self.transport, self._strict = protocol, transport, protocol
        self.reached = True
        try:
            return await protocol.read_response(timeout=self.greeting_timeout)
        except aiosmtplib.SMTPReadTimeoutError as error:
            message = f"Timed out waiting for the greeting ({self.greeting_timeout:g}s)"
            raise aiosmtplib.SMTPConnectTimeoutError(message) from error

    async def execute_command(
        self, *args: bytes, timeout: float | Literal[Default.token] | None = Default.token
    ) -> aiosmtplib.SMTPResponse:
        """aiosmtplib's, but never on an out-of-step session, and never returning into one."""
        self.check_in_step()
        response = await super().execute_command(*args, timeout=timeout)
        self.check_in_step(response)
        return response

    async def send_message_data(
        self, message: bytes, *, block_timeout: float, reply_timeout: float
    ) -> aiosmtplib.SMTPResponse:
        """The message and its final dot (DATA already answered 354); the end-of-data reply."""
        protocol = self.protocol
        if not isinstance(protocol, StrictProtocol):
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        self.check_in_step()
        try:
            response = await protocol.send_message_data(message, block_timeout, reply_timeout)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            self.close()
            raise
        if response.code == _CLOSING:
            self.close()
        return response
