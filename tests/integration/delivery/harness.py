"""Run the delivery service in-process against the real RabbitMQ, a test DNS server and sinks.

``DeliveryHarness`` starts ``postline.delivery.main.DeliveryService`` in the
test's namespace, publishes messages to ``deliver`` as the filter would, and
collects what delivery hands on: every event (from ``events``) and every
message it submits (DSNs, from ``submit``). Tests wait on those with
deadlines, never with sleeps. ``act`` appends an operator action to the
control stream as the audit API would, and ``publish_copy`` puts a copy on
``deliver`` as the flusher would (with ``postline-flush``).
"""

from __future__ import annotations

import uuid
from typing import Any

from prometheus_client import Counter

from postline.app.settings import Settings, context_for, topology_for
from postline.bus import Bus, Delivery
from postline.control import (
    COPY_HEADER,
    FLUSH_HEADER,
    OperatorAction,
    new_request_id,
    publish_control,
)
from postline.delivery import metrics
from postline.delivery.main import DeliveryService
from postline.lifecycle import Supervisor
from postline.models import (
    ENVELOPE_HEADER,
    Envelope,
    Event,
    EventKind,
    Peer,
    new_message_id,
    utcnow,
)
from postline.topology import Stage
from tests.support.broker import wait_until

BODY = b"From: a@example.org\r\nTo: b@x.test\r\nSubject: test\r\n\r\nhello\r\n"
SINK_MX = "mx.x.test"
SINK_ADDRESS = "127.0.0.1"


def sink_mx(port: int) -> Peer:
    """The host ``routed`` domains go to (``mx.x.test`` on 127.0.0.1), as events name it."""
    return Peer(name=SINK_MX, ip=SINK_ADDRESS, port=port)


def delivery_section(dns_address: str, smtp_port: int, **overrides: Any) -> dict[str, Any]:
    """``[delivery]`` for tests: loopback DNS and sinks, short timeouts, 1s retries."""
    section: dict[str, Any] = {
        "helo_name": "relay.test",
        "dns_nameservers": [dns_address],
        "smtp_port": smtp_port,
        "deny_private_destinations": False,
        "retry_schedule": "1s",
        "dns_timeout": "2s",
        "connect_timeout": "2s",
        "greeting_timeout": "2s",
        "command_timeout": "5s",
        "mail_timeout": "5s",
        "rcpt_timeout": "5s",
        "data_init_timeout": "5s",
        "data_block_timeout": "5s",
        "data_done_timeout": "5s",
        "rset_timeout": "2s",
        "attempt_timeout": "20s",
        "concurrency": 8,
        "metrics_listen": None,
    }
    section.update(overrides)
    return section


class DeliveryHarness:
    """The delivery service plus a bus that feeds it and listens to its output."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.supervisor = Supervisor()
        self.service = DeliveryService(settings.delivery, context_for(settings), self.supervisor)
        self.events: list[Event] = []
        self.submitted: list[Delivery] = []
        self.bus = Bus(settings.broker, topology_for(settings), name="test-harness", on_fatal=print)
        self.bus.add_consumer(Stage.EVENTS, self._on_event, prefetch=50)
        self.bus.add_consumer(Stage.SUBMIT, self._on_submit, prefetch=50)
        self._baseline = _counter(metrics.MESSAGES)
        self._stopped = False

    async def _on_event(self, delivery: Delivery) -> None:
        self.events.append(Event.from_json(delivery.body))

    async def _on_submit(self, delivery: Delivery) -> None:
        self.submitted.append(delivery)

    async def start(self) -> None:
        await self.bus.start()
        assert await self.bus.wait_connected(10), "harness bus did not connect"
        await self.service.start()
        await wait_until(lambda: self.service.ready, 10, "the delivery service to be ready")

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await self.service.drain(2)
        await self.service.close()
        await self.bus.drain(1)
        await self.bus.close()

    async def send(
        self,
        rcpt_to: tuple[str, ...] | list[str],
        mail_from: str = "sender@example.org",
        body: bytes = BODY,
        **envelope_fields: Any,
    ) -> Envelope:
        envelope = Envelope(
            message_id=new_message_id(),
            mail_from=mail_from,
            rcpt_to=tuple(rcpt_to),
            **envelope_fields,
        )
        await self.bus.publish_stage(Stage.DELIVER, body, envelope)
        return envelope

    async def act(
        self, action: str, *envelopes: Envelope, reason: str | None = None, keep: bool = False
    ) -> OperatorAction:
        """Append an operator ``action`` on ``envelopes`` to the control stream (confirmed)."""
        record = OperatorAction(
            new_request_id(),
            action,  # type: ignore[arg-type]
            tuple(e.message_id for e in envelopes),
            reason,
            "tester",
            keep,
            utcnow(),
        )
        await publish_control(self.bus, record)
        return record

    async def publish_copy(
        self,
        envelope: Envelope,
        flush: str | None = None,
        body: bytes = BODY,
        copy: str | None = None,
    ) -> None:
        """Put ``envelope`` on ``deliver`` as the flusher does, moved for request ``flush``
        (keeping the source's ``postline-copy``, ``copy``)."""
        headers = {ENVELOPE_HEADER: envelope.to_header()}
        if flush is not None:
            headers[FLUSH_HEADER] = flush
        if copy is not None:
            headers[COPY_HEADER] = copy
        topology = self.bus.topology
        await self.bus.publish(
            topology.work_exchange, "deliver", body, message_id=envelope.message_id, headers=headers
        )

    def of(
        self, kind: EventKind, recipient: str | None = None, message_id: str | None = None
    ) -> list[Event]:
        return [
            e
            for e in self.events
            if e.kind is kind
            and (recipient is None or e.recipient == recipient)
            and (message_id is None or e.message_id == message_id)
        ]

    async def wait_for(
        self,
        kind: EventKind,
        recipient: str | None = None,
        count: int = 1,
        timeout: float = 15,
        message_id: str | None = None,
    ) -> list[Event]:
        """The events of ``kind`` (for ``recipient``) once there are ``count`` of them."""

        def enough() -> bool:
            return len(self.of(kind, recipient, message_id)) >= count

        try:
            await wait_until(enough, timeout, f"{count} {kind} event(s) for {recipient}")
        except AssertionError:
            seen = [(e.kind.value, e.recipient, str(e.reply)) for e in self.events]
            raise AssertionError(f"no {count} {kind} for {recipient}; events: {seen}") from None
        return self.of(kind, recipient, message_id)

    async def flush(self, handled: int, timeout: float = 15) -> None:
        """Wait until ``handled`` messages are finished and all their output is collected.

        For asserting that something did NOT happen: the service's message counter
        says its publishes are confirmed; a sentinel behind them on ``events`` and
        ``submit`` says the harness has consumed everything published before it.
        """
        target = self._baseline + handled
        await wait_until(
            lambda: _counter(metrics.MESSAGES) >= target, timeout, f"{handled} handled messages"
        )
        marker = f"sentinel-{uuid.uuid4().hex}"
        sentinel = Event(kind=EventKind.RECEIVED, service="test", message_id=marker)
        await self.bus.publish_events([sentinel])
        envelope = Envelope(message_id=marker, mail_from="", rcpt_to=("x@x.test",))
        await self.bus.publish_stage(Stage.SUBMIT, b"sentinel", envelope)
        await wait_until(
            lambda: (
                any(e.message_id == marker for e in self.events)
                and any(d.message_id == marker for d in self.submitted)
            ),
            timeout,
            "the sentinels to come back",
        )
        self.events = [e for e in self.events if e.message_id != marker]
        self.submitted = [d for d in self.submitted if d.message_id != marker]


def _counter(counter: Counter) -> float:
    return sum(
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )
