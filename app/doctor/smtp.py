"""One SMTP conversation with a remote host, as delivery would have it, without DATA.

``converse(target, plan)`` connects (``CONNECT_TIMEOUT``), reads the greeting,
sends EHLO, STARTTLS when offered (unless ``tls_policy`` is ``none``), EHLO
again, ``MAIL FROM:<>``, ``RCPT TO:<address>`` and ``QUIT``, each reply within
``REPLY_TIMEOUT``, and returns one check line per step showing the reply.
It stops at the first step that cannot go on. Never DATA: nothing is sent.

TLS: the handshake is made with a verifying context (``[delivery]
tls_ca_file`` or the system store, the MX name as server name). When
verification fails, the reason is kept and the conversation starts over with
an unverifying context (what ``opportunistic`` delivery does), so MAIL and RCPT
are still tried; the STARTTLS line is then a ``WARN`` (``FAIL`` with
``tls_policy = "verify"``). No STARTTLS offered is a ``WARN``, a ``FAIL``
under ``required``/``verify``. The certificate's expiry is checked as our own
(``certificate.expiry_check``). Replies are raw remote text: the report
escapes them; each is cut to a few hundred characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509

from postline.app.doctor.certificate import expiry_check
from postline.app.doctor.report import Check, Status, escape, failed, passed, warned

CONNECT_TIMEOUT = 5.0
REPLY_TIMEOUT = 10.0
SESSION_TIMEOUT = 45.0
MAX_LINES = 100


@dataclass(frozen=True)
class Target:
    """Where to talk: the host's name (for TLS and the report), one address, the port."""

    host: str
    address: str
    port: int

    @property
    def label(self) -> str:
        return f"smtp {self.host}[{self.address}]:{self.port}"


@dataclass(frozen=True)
class Plan:
    """What to say: EHLO name, recipient, TLS policy and the CA bundle that verifies."""

    helo: str
    rcpt: str
    tls_policy: str
    ca_file: str | None = None


@dataclass
class Reply:
    code: int
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        """``250 first line / second line / ...`` (already escaped), cut to ``MAX_TEXT``."""
        first = f"{self.code} {self.lines[0]}" if self.lines else str(self.code)
        return escape(" / ".join([first.strip(), *self.lines[1:]]))


class _Unverified(Exception):
    """The certificate did not verify; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Stop(Exception):
    """The conversation cannot go on (the last check says why)."""


async def converse(target: Target, plan: Plan) -> list[Check]:
    """The check lines of one conversation (module docstring), within ``SESSION_TIMEOUT``."""
    checks: list[Check] = []
    try:
        async with asyncio.timeout(SESSION_TIMEOUT):
            try:
                await _session(target, plan, _context(plan, verify=True), None, checks)
            except _Unverified as error:
                checks.clear()
                await _session(target, plan, _context(plan, verify=False), error.reason, checks)
    except TimeoutError:
        found = f"the conversation took longer than {SESSION_TIMEOUT:g}s (a tarpit?)"
        checks.append(failed(f"{target.label} session", found, _ADVICE["session"]))
    return checks


def _context(plan: Plan, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=plan.ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Conversation:
    def __init__(self, target: Target, checks: list[Check]) -> None:
        self.target = target
        self.checks = checks
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def add(self, check: Check) -> None:
        self.checks.append(check)
        if check.status is Status.FAIL:
            raise _Stop

    async def connect(self) -> None:
        name = f"{self.target.label} connect"
        connecting = asyncio.open_connection(self.target.address, self.target.port)
        try:
            self.reader, self.writer = await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
        except TimeoutError:
            self.add(failed(name, f"no answer within {CONNECT_TIMEOUT:g}s", _PORT_ADVICE))
        except OSError as error:
            self.add(failed(name, escape(error.strerror or error), _PORT_ADVICE))
        self.add(passed(name, "TCP connection open"))

    async def reply(self) -> Reply:
        assert self.reader is not None
        reply = Reply(0)
        while len(reply.lines) < MAX_LINES:
            raw = await asyncio.wait_for(self.reader.readline(), REPLY_TIMEOUT)
            if not raw:
                raise ConnectionResetError("the server closed the connection")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            code = int(line[:3]) if line[:3].isdigit() else 0
            reply.code = reply.code or code
            reply.lines.append(escape(line[4:]))
            if code == 0 or line[3:4] != "-":
                break
        return reply

    async def command(self, line: str) -> Reply:
        assert self.writer is not None
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def step(
        self, name: str, line: str | None, expect: tuple[int, ...], soft: bool = False
    ) -> Reply | None:
        """Send ``line`` (None: just read), check the reply's code; None when it failed.

        A 4xx reply is a ``WARN``, anything else unexpected a ``FAIL`` (``soft``: a
        ``WARN`` too, for QUIT); no reply at all ends the conversation.
        """
        label = f"{self.target.label} {name}"
        try:
            reply = await (self.reply() if line is None else self.command(line))
        except (OSError, TimeoutError, ValueError) as error:
            timeout = isinstance(error, TimeoutError)
            why = escape(f"no reply within {REPLY_TIMEOUT:g}s" if timeout else error)
            advice = _ADVICE.get(name, "") if soft else _ADVICE["dropped"]
            self.add((warned if soft else failed)(label, why, advice))
            return None
        if reply.code in expect:
            self.checks.append(passed(label, str(reply)))
            return reply
        gentle = soft or 400 <= reply.code < 500
        advice = _ADVICE.get(name, "see the server's reply")
        self.checks.append((warned if gentle else failed)(label, str(reply), advice))
        return None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 2)


_PORT_ADVICE = (
    "check that the host is up and that this network lets outbound connections to the "
    "port through (many block port 25); [delivery] smtp_port is the port"
)
_ADVICE = {
    "greeting": "the server does not take mail now (or is not an SMTP server)",
    "EHLO": "the server refuses our EHLO name ([delivery] helo_name)",
    "MAIL FROM:<>": "the server refuses the null sender: DSNs to it fail; ask its postmaster",
    "RCPT TO": "the server refuses this recipient: check the address, or ask its postmaster",
    "QUIT": "harmless, but the server is not well-behaved",
    "dropped": "the server dropped or stalled the session",
    "session": "the server answers too slowly for delivery's timeouts; ask its postmaster",
}


async def _session(
    target: Target, plan: Plan, tls: ssl.SSLContext, unverified: str | None, checks: list[Check]
) -> None:
    """Append the lines of one conversation to ``checks`` (``_Unverified`` to start over)."""
    talk = _Conversation(target, checks)
    try:
        await talk.connect()
        if await talk.step("greeting", None, (220,)) is None:
            raise _Stop
        ehlo = await talk.step("EHLO", f"EHLO {plan.helo}", (250,))
        if ehlo is None:
            raise _Stop
        offered = {line.split(" ")[0].upper() for line in ehlo.lines[1:]}
        encrypt = plan.tls_policy != "none"
        if encrypt and await _starttls(talk, plan, tls, unverified, "STARTTLS" in offered):
            ehlo = await talk.step("EHLO (TLS)", f"EHLO {plan.helo}", (250,))
            if ehlo is None:
                raise _Stop
            offered = {line.split(" ")[0].upper() for line in ehlo.lines[1:]}
        utf8 = " SMTPUTF8" if not plan.rcpt.isascii() and "SMTPUTF8" in offered else ""
        if await talk.step("MAIL FROM:<>", f"MAIL FROM:<>{utf8}", (250,)) is not None:
            await talk.step("RCPT TO", f"RCPT TO:<{plan.rcpt}>", (250, 251))
        await talk.step("QUIT", "QUIT", (221,), soft=True)
    except _Stop:
        pass
    finally:
        await talk.close()


async def _starttls(
    talk: _Conversation, plan: Plan, context: ssl.SSLContext, unverified: str | None, offered: bool
) -> bool:
    """STARTTLS and the handshake; True when the session is now encrypted."""
    label = f"{talk.target.label} STARTTLS"
    if not offered:
        found = "not offered: mail to this host goes unencrypted"
        if plan.tls_policy in ("required", "verify"):
            talk.add(failed(label, found, f"tls_policy {plan.tls_policy} defers this mail"))
        talk.checks.append(warned(label, found, "ask the remote's postmaster to offer STARTTLS"))
        return False
    assert talk.writer is not None
    reply = await talk.command("STARTTLS")
    if reply.code != 220:
        talk.add(failed(label, str(reply), "the server offers STARTTLS but refuses it"))
    try:
        await asyncio.wait_for(
            talk.writer.start_tls(context, server_hostname=talk.target.host), REPLY_TIMEOUT
        )
    except ssl.SSLCertVerificationError as error:
        raise _Unverified(escape(error.verify_message or error.reason or error)) from None
    except (ssl.SSLError, OSError, TimeoutError) as error:
        talk.add(
            failed(label, f"TLS handshake failed: {escape(error)}", "the remote's TLS is broken")
        )
    talk.checks.append(_tls_check(label, talk, plan, reply, unverified))
    return True


def _tls_check(
    label: str, talk: _Conversation, plan: Plan, reply: Reply, unverified: str | None
) -> Check:
    assert talk.writer is not None
    tls = talk.writer.get_extra_info("ssl_object")
    version = tls.version() if tls is not None else "TLS"
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    expiry = None
    if der:
        leaf = x509.load_der_x509_certificate(der)
        expiry = expiry_check(leaf.not_valid_after_utc, datetime.now(UTC), label)
    found = f"{reply}; {version}"
    if unverified is not None:
        found += f"; certificate not verified: {unverified}"
        if expiry is not None:
            found += f"; {expiry.found}"
        if plan.tls_policy == "verify":
            return failed(
                label, found, "tls_policy verify defers this mail: the remote must fix it"
            )
        advice = f"tls_policy {plan.tls_policy} still delivers, without checking the certificate"
        return warned(label, found, advice)
    if expiry is None:
        return passed(label, found)
    found += f"; certificate verified for {talk.target.host}, {expiry.found}"
    return Check(expiry.status, label, found, expiry.advice)
