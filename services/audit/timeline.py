"""A message's journey in the guide's four steps, as plain data for the console's templates.

``timeline(record)`` returns four ``Step`` values:

1. **Submitted**: the client (IP, HELO, auth user, TLS), or each refusal with its reply;
2. **Received**: queue id, time, size, subject, Message-ID, sender and recipients;
3. **Filters and queue**: every filter decision and every attempt in time order
   (recipient, MX host and IP, TLS, the remote reply, the next attempt), each
   attempt with the SMTP conversation of its session;
4. **Delivered** / **Failed** / **Partly delivered** / **Not delivered yet**: each
   recipient's final reply, and the DSNs sent.

``summary(record)`` gives a results-table row. Values are the raw strings
(what clients and remote servers sent included): escaping them is the
template engine's job (autoescape), never done here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from postline.audit.views import MessageRecord
from postline.models import Event, EventKind, TlsInfo

_ATTEMPTS = {EventKind.DEFERRED, EventKind.DELIVERED, EventKind.BOUNCED, EventKind.EXPIRED}
_FILTERS = {EventKind.FILTERED, EventKind.REJECTED, EventKind.DISCARDED}
_QUEUE = {EventKind.PARKED, EventKind.DELAYED, EventKind.OPERATOR}
_PENDING = {"queued", "deferred", "parked", "held"}


@dataclass
class Entry:
    """One thing that happened: when, a title, its facts and maybe a conversation."""

    at: str
    title: str
    status: str  # ok, failed, waiting or info: the entry's colour
    facts: list[tuple[str, str]] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)


@dataclass
class Step:
    number: int
    title: str
    status: str  # ok, failed, waiting or none
    facts: list[tuple[str, str]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)


@dataclass
class Row:
    """One line of the results table."""

    message_id: str
    at: str
    sender: str
    recipients: list[tuple[str, str]]
    state: str
    last_reply: str


def clock(when: datetime | None) -> str:
    if when is None:
        return ""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def timeline(record: MessageRecord) -> list[Step]:
    return [_submitted(record), _received(record), _queue(record), _outcome(record)]


def summary(record: MessageRecord) -> Row:
    first = record.received_at or (record.events[0].at if record.events else None)
    replies = sorted(
        (r for r in record.recipients if r.reply is not None),
        key=lambda r: r.updated_at or datetime.min.replace(tzinfo=UTC),
    )
    last = str(replies[-1].reply) if replies else ""
    refused = [e for e in record.events if e.kind is EventKind.REFUSED and e.reply]
    if not last and refused:
        last = str(refused[-1].reply)
    return Row(
        message_id=record.message_id,
        at=clock(first),
        sender=_sender(record.mail_from),
        recipients=[(r.address, r.state) for r in record.recipients],
        state=record.state + (" (partly delivered)" if record.partly_delivered else ""),
        last_reply=last,
    )


def _submitted(record: MessageRecord) -> Step:
    refusals = [e for e in record.events if e.kind is EventKind.REFUSED]
    if refusals:
        return Step(1, "Submitted", "failed", entries=[_refusal(e) for e in refusals])
    if record.received_at is None:
        return Step(1, "Submitted", "none", [("", "no submission recorded")])
    facts = [
        ("client IP", record.client_ip or "unknown"),
        ("HELO", record.helo or "unknown"),
        ("authenticated as", record.auth_user or "not authenticated"),
        ("TLS", record.tls_version or "none (plaintext)"),
    ]
    return Step(1, "Submitted", "ok", facts)


def _refusal(event: Event) -> Entry:
    facts = _present(
        ("client IP", event.client_ip),
        ("HELO", event.helo),
        ("authenticated as", event.auth_user),
        ("TLS", _tls(event.tls)),
        ("sender", None if event.mail_from is None else _sender(event.mail_from)),
        ("recipient", event.recipient),
        ("reply", str(event.reply) if event.reply else None),
        ("reason", event.reason),
        ("times", str(event.count) if event.count and event.count > 1 else None),
        ("sampled", "yes: more like it were counted" if event.sampled else None),
    )
    return Entry(clock(event.at), f"{event.command or 'command'} refused", "failed", facts)


def _received(record: MessageRecord) -> Step:
    if record.received_at is None:
        return Step(2, "Received", "none", [("", "not received")])
    rcpt = ", ".join(r.address for r in record.recipients)
    facts = _present(
        ("queue id", record.message_id),
        ("time", clock(record.received_at)),
        ("size", f"{record.size} bytes" if record.size is not None else None),
        ("sender", _sender(record.mail_from)),
        ("recipients", rcpt or None),
        ("subject", record.subject),
        ("Message-ID", record.header_message_id),
    )
    return Step(2, "Received", "ok", facts)


def _queue(record: MessageRecord) -> Step:
    talks = [e for e in record.events if e.kind is EventKind.CONVERSATION]
    used: set[int] = set()
    entries: list[Entry] = []
    for event in record.events:
        if event.kind in _ATTEMPTS:
            entry = _attempt(event)
            for index, talk in enumerate(talks):
                if index not in used and _same_session(talk, event):
                    entry.transcript = list(talk.transcript or [])
                    used.add(index)
            entries.append(entry)
        elif event.kind in _FILTERS or event.kind in _QUEUE:
            entries.append(_queue_event(event))
    for index, talk in enumerate(talks):
        if index not in used:
            title = f"attempt {talk.attempt}: SMTP session with {_host(talk)}"
            entries.append(Entry(clock(talk.at), title, "info", [], list(talk.transcript or [])))
    if not entries:
        waiting = "waiting" if record.state in _PENDING else "none"
        return Step(3, "Filters and queue", waiting, [("", "nothing yet")])
    failed = any(e.status == "failed" for e in entries)
    return Step(3, "Filters and queue", "failed" if failed else "ok", entries=entries)


def _attempt(event: Event) -> Entry:
    facts = _present(
        ("MX", event.mx.label if event.mx else event.mx_host),
        ("TLS", _tls(event.tls)),
        ("reply", str(event.reply) if event.reply else None),
        ("reason", event.reason),
        ("next attempt", clock(event.next_attempt_at) or None),
    )
    status = {EventKind.DELIVERED: "ok", EventKind.DEFERRED: "waiting"}.get(event.kind, "failed")
    title = f"attempt {event.attempt}: {event.kind.value} for {event.recipient or 'all'}"
    return Entry(clock(event.at), title, status, facts)


def _queue_event(event: Event) -> Entry:
    facts = _present(
        ("reply", str(event.reply) if event.reply else None),
        ("reason", event.reason),
        ("recipient", event.recipient),
        ("by", event.actor),
        ("from queue", event.stage),
    )
    failed = event.kind in (EventKind.REJECTED, EventKind.DISCARDED, EventKind.PARKED)
    name = event.action if event.kind is EventKind.OPERATOR and event.action else event.kind
    return Entry(clock(event.at), str(name), "failed" if failed else "info", facts)


def _outcome(record: MessageRecord) -> Step:
    states = {r.state for r in record.recipients}
    if not states:
        return Step(4, "Not delivered", "failed" if record.state == "refused" else "none")
    if states == {"delivered"}:
        title, status = "Delivered", "ok"
    elif states & _PENDING:
        title, status = "Not delivered yet", "waiting"
    elif "delivered" in states:
        title, status = "Partly delivered", "failed"
    else:
        title, status = "Failed", "failed"
    facts = [
        (r.address, f"{r.state}" + (f": {r.reply}" if r.reply else "") + _via(r.mx))
        for r in record.recipients
    ]
    dsns = [_queue_event(e) for e in record.events if e.kind is EventKind.DSN_SENT]
    return Step(4, title, status, facts, dsns)


def _via(mx: str | None) -> str:
    return f" (via {mx})" if mx else ""


def _same_session(talk: Event, event: Event) -> bool:
    if talk.session_id and event.session_id:
        return talk.session_id == event.session_id
    return talk.attempt == event.attempt and event.recipient in (talk.rcpt_to or ())


def _host(event: Event) -> str:
    return event.mx.label if event.mx else event.mx_host or "the remote server"


def _tls(tls: TlsInfo | None) -> str | None:
    if tls is None:
        return None
    parts = [tls.version or "TLS", tls.cipher or ""]
    if tls.verified is not None:
        parts.append("certificate verified" if tls.verified else "certificate not verified")
    return " ".join(p for p in parts if p)


def _sender(mail_from: str | None) -> str:
    if mail_from is None:
        return ""
    return mail_from or "<> (null sender)"


def _present(*facts: tuple[str, str | None]) -> list[tuple[str, str]]:
    return [(label, value) for label, value in facts if value]
