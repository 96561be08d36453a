"""Ingress policy and queueing: what the MAIL, RCPT and DATA commands decide.

* MAIL: an authenticated user must own the sender (``553 5.7.1``); per-user
  and per-client message rates (``450 4.7.1``).
* RCPT: relay rights (authenticated, or client in ``relay_networks``;
  ``554 5.7.1``), then ``max_recipients`` (``452 4.5.3``).
* DATA: publish the body and the envelope to the ``submit`` queue and answer
  ``250 2.0.0 Ok: queued as <id>`` only once RabbitMQ confirmed it; a failed or
  late confirm answers ``451 4.3.0``. The publish runs shielded from the
  session (a client that hangs up does not cancel it half-way) and a drain
  waits for it. A ``received`` event follows in the background: its failure
  is logged and changes nothing for the message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from postline.bus import Bus, PublishError
from postline.ingress import metrics, replies
from postline.ingress.address import Mailbox
from postline.ingress.limits import RateLimiter
from postline.ingress.policy import relay_reply, sender_reply
from postline.ingress.settings import IngressSettings
from postline.ingress.state import Connection, Transaction
from postline.ingress.users import UserStore
from postline.models import Envelope, Event, EventKind, new_message_id
from postline.reply import SmtpReply
from postline.topology import Stage

log = logging.getLogger("postline.ingress.handler")


class IngressHandler:
    """Decisions for MAIL/RCPT and the hand-off of DATA to the broker."""

    def __init__(self, settings: IngressSettings, bus: Bus, users: UserStore) -> None:
        self._settings = settings
        self._bus = bus
        self._users = users
        self._ip_rate = RateLimiter(settings.max_messages_per_ip, settings.rate_window)
        self._user_rate = RateLimiter(settings.max_messages_per_user, settings.rate_window)
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle_MAIL(self, conn: Connection, sender: Mailbox | None) -> SmtpReply:
        if conn.auth_user is not None:
            refusal = sender_reply(await self._users.get(conn.auth_user), sender)
            if refusal is not None:
                return _rejected("sender_not_owned", refusal, conn)
            if not self._user_rate.allow(conn.auth_user):
                return _rejected("rate_user", replies.RATE_LIMITED, conn)
        if not self._ip_rate.allow(conn.limit_key):
            return _rejected("rate_ip", replies.RATE_LIMITED, conn)
        return replies.SENDER_OK

    async def handle_RCPT(self, conn: Connection, txn: Transaction, rcpt: Mailbox) -> SmtpReply:
        refusal = relay_reply(conn.auth_user is not None, conn.trusted)
        if refusal is not None:
            return _rejected("relay_denied", refusal, conn)
        if len(txn.rcpt_to) >= self._settings.max_recipients:
            return _rejected("too_many_recipients", replies.TOO_MANY_RECIPIENTS, conn)
        return replies.RECIPIENT_OK

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
        )
        fields = {**conn.log_fields(), "message_id": envelope.message_id}
        started = time.monotonic()
        try:
            await asyncio.shield(self._spawn(self._bus.publish_stage(Stage.SUBMIT, body, envelope)))
        except PublishError as error:
            metrics.MESSAGES.labels("not_queued", "4xx").inc()
            log.warning("message not queued: %s", error, extra=fields)
            return replies.TRY_AGAIN
        metrics.PUBLISH_SECONDS.observe(time.monotonic() - started)
        metrics.MESSAGE_SIZE.observe(len(body))
        metrics.MESSAGES.labels("queued", "2xx").inc()
        log.info("queued", extra={**fields, "size": len(body), "rcpt_count": len(txn.rcpt_to)})
        self._spawn(self._announce(conn, envelope, len(body)))
        return replies.queued(envelope.message_id)

    async def wait_idle(self, timeout: float) -> None:
        """Wait (up to ``timeout`` s) for publishes and events still in flight."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _announce(self, conn: Connection, envelope: Envelope, size: int) -> None:
        event = Event(
            kind=EventKind.RECEIVED,
            service="ingress",
            message_id=envelope.message_id,
            mail_from=envelope.mail_from,
            rcpt_to=envelope.rcpt_to,
            size=size,
            client_ip=envelope.client_ip,
            auth_user=envelope.auth_user,
            session_id=conn.session_id,
        )
        try:
            await self._bus.publish_events([event])
        except Exception as error:
            log.warning(
                "received event not published: %s", error, extra={"message_id": event.message_id}
            )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _rejected(reason: str, reply: SmtpReply, conn: Connection) -> SmtpReply:
    metrics.REJECTIONS.labels(reason).inc()
    log.info("refused: %s", reason, extra=conn.log_fields())
    return reply
