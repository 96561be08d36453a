"""Ingress policy and queueing: what the MAIL, RCPT and DATA commands decide.

* MAIL: an authenticated user must own the sender (``553 5.7.1``); per-user
  and per-client message rates (``450 4.7.1``).
* RCPT: relay rights (authenticated, or client in ``relay_networks``;
  ``554 5.7.1``), then ``max_recipients`` (``452 4.5.3``).
* DATA: publish the body and the envelope to the ``submit`` queue and answer
  ``250 2.0.0 Ok: queued as <id>`` only once RabbitMQ confirmed it. Not
  queued for certain (no connection to send on, nacked, unroutable):
  ``451 4.3.0 Local error; message not queued``. Sent but not confirmed
  within ``[broker] publish_timeout`` (a stalled broker): the outcome is
  unknown, so ``451 4.3.0 Queueing not confirmed in time; the message may
  have been queued`` (metric result ``unconfirmed``), and the confirm is
  still awaited in the background (bounded by the bus).
* The publish runs shielded from the session (a client that hangs up does
  not cancel it half-way) and a drain waits for it. Every message the broker
  confirms, whatever the client was told, gets a ``received`` event in the
  background; one confirmed after a ``451``, or after the client went away,
  says in its ``reason`` that it may arrive twice (the client sends it
  again). It carries the client's session as data: ``session_id``, ``helo``
  and, over TLS, ``tls`` (version and cipher), and the message's
  ``Message-ID`` and ``Subject`` (``headers.summary``; no subject with
  ``record_subject = false``). A failed event is logged and changes nothing
  for the message.
* Every refusal here (MAIL, RCPT, a DATA not queued) is also a ``refused``
  event through ``refusals`` (``postline.ingress.refusals``: coalesced,
  bounded, published in the background); the other commands record theirs
  with ``refused``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from postline.bus import Bus, PublishError, PublishUnconfirmed
from postline.ingress import metrics, replies
from postline.ingress.address import Mailbox
from postline.ingress.headers import header_section, summary
from postline.ingress.limits import RateLimiter
from postline.ingress.policy import relay_reply, sender_reply
from postline.ingress.refusals import Refusals
from postline.ingress.settings import IngressSettings
from postline.ingress.state import Connection, Transaction
from postline.ingress.users import UserStore
from postline.models import Envelope, Event, EventKind, TlsInfo, new_message_id
from postline.reply import SmtpReply
from postline.topology import Stage

log = logging.getLogger("postline.ingress.handler")
T = TypeVar("T")
TOLD_TO_RETRY = "accepted after the client was told to retry (451, not confirmed in time)"
CLIENT_GONE = "accepted after the client went away without an answer"
MAY_ARRIVE_TWICE = "may arrive twice"
CONTENT_REASONS = {
    replies.TOO_BIG: "size",
    replies.HEADER_TOO_BIG: "header_too_big",
    replies.BARE_LINE_ENDING: "bare_line_ending",
    replies.NUL_IN_CONTENT: "nul_in_content",
    replies.LINE_TOO_LONG: "line_too_long",
}
"""The ``refused`` event reason of each content refusal."""


@dataclass
class Submission:
    """One message at end of DATA, and what its client was told."""

    conn: Connection
    envelope: Envelope
    size: int
    head: bytes = b""
    told_to_retry: bool = False
    client_gone: bool = False

    def received_reason(self) -> str | None:
        """Why this message may arrive twice, for its ``received`` event (None: it won't)."""
        if self.client_gone:
            return f"{CLIENT_GONE}: {MAY_ARRIVE_TWICE}"
        if self.told_to_retry:
            return f"{TOLD_TO_RETRY}: {MAY_ARRIVE_TWICE}"
        return None


class IngressHandler:
    """Decisions for MAIL/RCPT and the hand-off of DATA to the broker."""

    def __init__(self, settings: IngressSettings, bus: Bus, users: UserStore) -> None:
        self._settings = settings
        self._bus = bus
        self._users = users
        self._ip_rate = RateLimiter(settings.max_messages_per_ip, settings.rate_window)
        self._user_rate = RateLimiter(settings.max_messages_per_user, settings.rate_window)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.refusals = Refusals(bus)
        self.refused = self.refusals.record

    async def handle_MAIL(self, conn: Connection, sender: Mailbox | None) -> SmtpReply:
        refusal = await self._mail_refusal(conn, sender)
        if refusal is None:
            return replies.SENDER_OK
        reason, reply = refusal
        self.refused(conn, "MAIL", reason, reply, mail_from=_address(sender))
        return _rejected(reason, reply, conn)

    async def _mail_refusal(
        self, conn: Connection, sender: Mailbox | None
    ) -> tuple[str, SmtpReply] | None:
        if conn.auth_user is not None:
            refusal = sender_reply(await self._users.get(conn.auth_user), sender)
            if refusal is not None:
                return "sender_not_owned", refusal
            if not self._user_rate.allow(conn.auth_user):
                return "rate_user", replies.RATE_LIMITED
        if not self._ip_rate.allow(conn.limit_key):
            return "rate_ip", replies.RATE_LIMITED
        return None

    async def handle_RCPT(self, conn: Connection, txn: Transaction, rcpt: Mailbox) -> SmtpReply:
        reason, reply = "", relay_reply(conn.auth_user is not None, conn.trusted)
        if reply is not None:
            reason = "relay_denied"
        elif len(txn.rcpt_to) >= self._settings.max_recipients:
            reason, reply = "too_many_recipients", replies.TOO_MANY_RECIPIENTS
        if reply is None:
            return replies.RECIPIENT_OK
        sender = _address(txn.mail_from)
        self.refused(conn, "RCPT", reason, reply, mail_from=sender, recipient=str(rcpt))
        return _rejected(reason, reply, conn)

    def refused_size(self, conn: Connection, sender: Mailbox | None) -> None:
        """MAIL refused for its declared SIZE (``552 5.3.4``)."""
        self.refused(conn, "MAIL", "size_declared", replies.TOO_BIG, mail_from=_address(sender))

    def refused_content(self, conn: Connection, txn: Transaction, reply: SmtpReply) -> None:
        """A message refused at the end of DATA for its content (``data.check_content``)."""
        reason = CONTENT_REASONS.get(reply, "bad_content")
        mail_from = _address(txn.mail_from)
        self.refused(conn, "DATA", reason, reply, mail_from=mail_from, rcpt_to=list(txn.rcpt_to))

    async def handle_DATA(self, conn: Connection, txn: Transaction, body: bytes) -> SmtpReply:
        envelope = Envelope(
            message_id=new_message_id(),
            mail_from=str(txn.mail_from) if txn.mail_from else "",
            rcpt_to=tuple(txn.rcpt_to),
            client_ip=str(conn.client_ip) if conn.client_ip else None,
            helo=conn.helo,
            auth_user=conn.auth_user,
            tls=conn.tls,
            smtputf8=txn.smtputf8,
            ret=txn.ret,
            envid=txn.envid,
            rcpt_params=dict(txn.rcpt_params),
        )
        submission = Submission(conn, envelope, len(body), header_section(body))
        queueing = self._spawn(self._queue(submission, body))
        try:
            return await asyncio.shield(queueing)
        except asyncio.CancelledError:
            submission.client_gone = True  # whatever the broker says, the client heard nothing
            raise

    async def wait_idle(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) for publishes and events still in flight."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        await self.refusals.close(timeout)

    async def _queue(self, submission: Submission, body: bytes) -> SmtpReply:
        """Publish to ``submit``; the reply says what is known (module docstring)."""
        envelope = submission.envelope
        fields = {**submission.conn.log_fields(), "message_id": envelope.message_id}
        started = time.monotonic()
        try:
            await self._bus.publish_stage(Stage.SUBMIT, body, envelope, patient=False)
        except PublishUnconfirmed as error:
            metrics.MESSAGES.labels("unconfirmed", "4xx").inc()
            log.warning("queueing not confirmed in time: %s", error, extra=fields)
            self._spawn(self._announce_if_confirmed(submission, error))
            return self._not_queued(submission, "queueing_not_confirmed", replies.NOT_CONFIRMED)
        except PublishError as error:
            metrics.MESSAGES.labels("not_queued", "4xx").inc()
            log.warning("message not queued: %s", error, extra=fields)
            return self._not_queued(submission, "broker_unavailable", replies.TRY_AGAIN)
        metrics.PUBLISH_SECONDS.observe(time.monotonic() - started)
        metrics.MESSAGE_SIZE.observe(len(body))
        metrics.MESSAGES.labels("queued", "2xx").inc()
        log.info("queued", extra={**fields, "size": len(body), "rcpt_count": len(envelope.rcpt_to)})
        self._spawn(self._announce(submission))
        return replies.queued(envelope.message_id)

    def _not_queued(self, submission: Submission, reason: str, reply: SmtpReply) -> SmtpReply:
        envelope = submission.envelope
        self.refused(
            submission.conn,
            "DATA",
            reason,
            reply,
            mail_from=envelope.mail_from,
            rcpt_to=envelope.rcpt_to,
        )
        return reply

    async def _announce_if_confirmed(
        self, submission: Submission, unconfirmed: PublishUnconfirmed
    ) -> None:
        """The ``received`` event of a message confirmed after its client was told to retry."""
        fields = {"message_id": submission.envelope.message_id}
        if not await unconfirmed.confirmed():
            log.warning("queueing never confirmed: the message may be queued or not", extra=fields)
            return
        log.warning("queued after the client was told to retry: may arrive twice", extra=fields)
        submission.told_to_retry = True
        await self._announce(submission)

    async def _announce(self, submission: Submission) -> None:
        envelope, conn = submission.envelope, submission.conn
        tls = TlsInfo(version=conn.tls_version, cipher=conn.tls_cipher) if conn.tls else None
        header_message_id, subject = await summary(submission.head, self._settings.record_subject)
        event = Event(
            kind=EventKind.RECEIVED,
            service="ingress",
            message_id=envelope.message_id,
            mail_from=envelope.mail_from,
            rcpt_to=envelope.rcpt_to,
            size=submission.size,
            client_ip=envelope.client_ip,
            helo=envelope.helo,
            auth_user=envelope.auth_user,
            session_id=conn.session_id,
            tls=tls,
            header_message_id=header_message_id,
            subject=subject,
            reason=submission.received_reason(),
        )
        try:
            await self._bus.publish_events([event])
        except Exception as error:
            log.warning(
                "received event not published: %s", error, extra={"message_id": event.message_id}
            )

    def _spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _address(mailbox: Mailbox | None) -> str:
    """An envelope address as events spell it ('' for the null sender)."""
    return str(mailbox) if mailbox is not None else ""


def _rejected(reason: str, reply: SmtpReply, conn: Connection) -> SmtpReply:
    """Count the refusal; log it, at most a few times per session and reason."""
    metrics.REJECTIONS.labels(reason).inc()
    logging_it = conn.may_log(f"refused:{reason}")
    if logging_it is not False:
        more = "" if logging_it else " (further ones in this session are not logged)"
        log.info("refused: %s%s", reason, more, extra=conn.log_fields())
    return reply
