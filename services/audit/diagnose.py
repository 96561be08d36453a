"""The one-line diagnosis of a message: what happened, in plain words, and what to do.

``diagnose(record)`` is pure: it reads the record's states and events and
returns one line starting with ``Diagnosis: ``, in the issue's own words:

* NXDOMAIN: ``MX record for example.com not found (NXDOMAIN): the domain does
  not exist or has no mail servers; check the address``
* a host that does not answer: ``destination not responding: connection to
  mx1.example.net[192.0.2.7]:25 timed out on 3 attempts; next attempt 14:05 UTC``
* a remote's refusal: ``destination refused: 550 5.1.1 user unknown``
* a refusal at ingress: ``refused at submission: client 10.1.2.3 is not in
  relay_networks and did not authenticate`` (and the other refusals by name)
* delivered: ``delivered: accepted by mx.example.com (250 2.0.0 Ok: queued as
  4QX...); if the recipient cannot find it, the problem is on their side``
* rejected by a filter, expired (with the last trouble), parked, queued and
  deferred (with the reply, the attempts and the next attempt time in UTC).

A message whose recipients fared differently gets one clause per recipient
(``a@x: ...  |  b@y: ...``). Next attempt times are ``HH:MM UTC``, with the date
when it is not the day of the last attempt. The line never holds a control
character (they are escaped), but it is not HTML-escaped: that is the console's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from postline.audit.refused import refused_at_submission
from postline.models import Event, EventKind
from postline.reply import SmtpReply

if TYPE_CHECKING:
    from postline.audit.views import MessageRecord, RecipientRecord

PREFIX = "Diagnosis: "
DELIVERED_ADVICE = "if the recipient cannot find it, the problem is on their side"
_REMOTE_REASONS = ("remote replied", "refused at")  # delivery's words for the remote's own reply
_WITHIN = re.compile(r"within (\S+?);")
_KINDS: dict[str, frozenset[EventKind]] = {  # a recipient state -> the events that decide it
    "delivered": frozenset({EventKind.DELIVERED}),
    "bounced": frozenset({EventKind.BOUNCED}),
    "expired": frozenset({EventKind.EXPIRED}),
    "deferred": frozenset({EventKind.DEFERRED}),
    "rejected": frozenset({EventKind.REJECTED, EventKind.DISCARDED}),
    "refused": frozenset({EventKind.REFUSED}),
}
_OUTCOMES: frozenset[EventKind] = frozenset().union(*_KINDS.values())


def diagnose(record: MessageRecord) -> str:
    """``Diagnosis: ...``: one line for the whole message (module docstring)."""
    return PREFIX + _one_line(_message(record))


def _message(record: MessageRecord) -> str:
    refused = _last(record.events, EventKind.REFUSED)
    if refused is not None and (record.state == "refused" or not record.recipients):
        return refused_at_submission(refused)
    if record.state == "parked":
        return _parked(record)
    if not record.recipients:
        return _queued(record) if record.events else "nothing is recorded for this message yet"
    clauses = [(r.address, _recipient(record, r)) for r in record.recipients]
    if len({clause for _, clause in clauses}) == 1:
        return clauses[0][1]
    lead = "partly delivered: " if record.partly_delivered else ""
    return lead + "  |  ".join(f"{address}: {clause}" for address, clause in clauses)


def _recipient(record: MessageRecord, recipient: RecipientRecord) -> str:
    state = recipient.state
    event = _outcome(record.events, recipient.address, state)
    reply = (event.reply if event is not None else None) or recipient.reply
    domain = recipient.address.rpartition("@")[2]
    operator = _operator(record.events, recipient.address)
    if operator is not None and operator.action == _OPERATOR_ACTIONS.get(state):
        return _dsn(record, recipient, _by_operator(operator, state))
    if state == "delivered":
        return _delivered(recipient, event, reply)
    if state == "bounced":
        return _dsn(record, recipient, _bounced(domain, event, reply))
    if state == "expired":
        return _dsn(record, recipient, _expired(recipient, domain, event, reply))
    if state == "rejected":
        return _dsn(record, recipient, _rejected(event, reply))
    if state == "refused":
        return refused_at_submission(event) if event is not None else "refused at submission"
    if state == "deferred":
        return _deferred(recipient, domain, event, reply)
    if state == "queued":
        return _queued(record)
    if state == "parked":
        return _parked(record)
    if state == "held":
        return "held by an operator: it is not tried until it is released"
    if state == "deleted":
        return "deleted by an operator: it will not be delivered"
    return state


def _delivered(recipient: RecipientRecord, event: Event | None, reply: SmtpReply | None) -> str:
    host = event.mx.name if event is not None and event.mx is not None else _host(recipient.mx)
    said = f" ({reply})" if reply is not None else ""
    by = f" by {host}" if host else ""
    return f"delivered: accepted{by}{said}; {DELIVERED_ADVICE}"


def _bounced(domain: str, event: Event | None, reply: SmtpReply | None) -> str:
    if reply is None:
        return f"not delivered: {_reason(event) or 'failed permanently'}"
    text = reply.text.lower()
    if reply.enhanced == "5.1.2" and text.startswith("host or domain name not found"):
        return _nxdomain(domain, reply)
    if reply.enhanced == "5.1.2" and text.startswith("domain has no mx"):
        return f"{domain} has no MX and no address records: no mail servers; check the address"
    if reply.enhanced == "5.1.10":
        return f"{domain} does not accept mail (null MX); check the address"
    if _from_remote(event):
        return f"destination refused: {reply}"
    reason = _reason(event)
    return f"not delivered: {reply}" + (f" ({reason})" if reason else "")


def _nxdomain(domain: str, reply: SmtpReply) -> str:
    _, _, name = reply.text.partition(": ")
    name = name.strip().rstrip(".") or domain
    if name.lower() == domain.lower():
        return (
            f"MX record for {domain} not found (NXDOMAIN): the domain does not exist "
            "or has no mail servers; check the address"
        )
    return (
        f"mail server {name} of {domain} not found (NXDOMAIN): the domain's MX points to a "
        "host that does not exist; the recipient's domain must fix its DNS"
    )


def _deferred(
    recipient: RecipientRecord, domain: str, event: Event | None, reply: SmtpReply | None
) -> str:
    attempts = _attempts(recipient, event)
    tail = f" on {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
    upcoming = recipient.next_attempt_at or (event.next_attempt_at if event else None)
    if upcoming is not None:
        tail += f"; next attempt {_clock(upcoming, event.at if event else None)}"
    return _trouble(recipient, domain, event, reply) + tail


def _trouble(
    recipient: RecipientRecord, domain: str, event: Event | None, reply: SmtpReply | None
) -> str:
    """What went wrong on the last attempt, without the attempts and the next one."""
    if reply is None:
        return f"not delivered yet: {_reason(event) or 'waiting for a retry'}"
    if _from_remote(event):
        return f"destination deferred it: {reply}"
    if reply.enhanced in ("4.4.1", "4.4.2"):
        host = event.mx.label if event is not None and event.mx is not None else recipient.mx
        where = host or f"the mail servers of {domain}"
        return f"destination not responding: connection to {where} {_how(reply)}"
    if reply.enhanced == "4.4.3":
        return f"DNS lookup for {domain} failed temporarily ({reply})"
    reason = _reason(event)
    return f"not delivered yet: {reply}" + (f" ({reason.split(';')[0]})" if reason else "")


def _how(reply: SmtpReply) -> str:
    text = reply.text.lower()
    if "timed out" in text:
        return "timed out"
    if "refused" in text:
        return "was refused"
    if text.startswith("lost connection"):
        return "was lost"
    return "failed"


def _expired(
    recipient: RecipientRecord, domain: str, event: Event | None, reply: SmtpReply | None
) -> str:
    found = _WITHIN.search(_reason(event))
    within = f" within {found.group(1)}" if found else ""
    attempts = _attempts(recipient, event)
    after = f" after {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
    return (
        f"expired: not delivered{within}{after}; last: {_trouble(recipient, domain, event, reply)}"
    )


def _rejected(event: Event | None, reply: SmtpReply | None) -> str:
    reason = _reason(event)
    if event is not None and event.kind is EventKind.DISCARDED:
        head = reason or "discarded by a filter"
        return f"{head}: dropped on purpose, not delivered and no DSN"
    head = reason if reason.startswith("rejected by filter") else "rejected by a filter"
    said = f" ({reply})" if reply is not None else ""
    return f"{head}{said}; it was not sent"


def _parked(record: MessageRecord) -> str:
    event = _last(record.events, EventKind.PARKED)
    why = f" ({_reason(event)})" if _reason(event) else ""
    where = f" from {event.stage}" if event is not None and event.stage else ""
    return f"parked{where}{why}: it could not be processed; it waits in the parked queue"


def _queued(record: MessageRecord) -> str:
    if _last(record.events, EventKind.FILTERED) is not None:
        return "queued: passed the filters, waiting for its first delivery attempt"
    return "queued: received, waiting for the filters and its first delivery attempt"


def _dsn(record: MessageRecord, recipient: RecipientRecord, text: str) -> str:
    for event in reversed(record.events):
        if event.kind is EventKind.DSN_SENT and recipient.address in (event.rcpt_to or ()):
            return f"{text}; a DSN went to <{event.mail_from or record.mail_from or ''}>"
    return text


# -- helpers ------------------------------------------------------------------------------


def _outcome(events: Iterable[Event], address: str, state: str) -> Event | None:
    """The recipient's latest outcome event of ``state``'s kind (else its latest outcome)."""
    mine = [e for e in events if e.kind in _OUTCOMES and _same(e.recipient, address)]
    wanted = [e for e in mine if e.kind in _KINDS.get(state, frozenset())]
    chosen = wanted or mine
    return max(chosen, key=lambda e: e.at) if chosen else None


_OPERATOR_WORDS = {
    "bounced": "bounced by operator {actor}{reason}: it will not be delivered",
    "deleted": "deleted by operator {actor}{reason}: it will not be delivered",
    "held": "held by operator {actor}{reason}: it is not tried until it is released",
}
_OPERATOR_ACTIONS = {"bounced": "bounce", "deleted": "delete", "held": "hold"}


def _operator(events: Iterable[Event], address: str) -> Event | None:
    """The latest ``operator`` event that applies to ``address`` (by recipient or rcpt_to)."""
    mine = [
        e
        for e in events
        if e.kind is EventKind.OPERATOR
        and (e.rcpt_to is None or any(_same(r, address) for r in e.rcpt_to))
    ]
    return max(mine, key=lambda e: e.at) if mine else None


def _by_operator(event: Event, state: str) -> str:
    if event.action != _OPERATOR_ACTIONS[state]:
        return (
            _OPERATOR_WORDS[state]
            .format(actor="", reason="")
            .replace("operator ", "an operator", 1)
        )
    reason = f" ({event.reason})" if event.reason else ""
    return _OPERATOR_WORDS[state].format(actor=event.actor or "unknown", reason=reason)


def _same(recipient: str | None, address: str) -> bool:
    return recipient is not None and recipient.lower() == address.lower()


def _last(events: Iterable[Event], kind: EventKind) -> Event | None:
    found = [e for e in events if e.kind is kind]
    return max(found, key=lambda e: e.at) if found else None


def _attempts(recipient: RecipientRecord, event: Event | None) -> int:
    return max(recipient.attempts, event.attempt if event is not None else 0)


def _reason(event: Event | None) -> str:
    return (event.reason or "") if event is not None else ""


def _from_remote(event: Event | None) -> bool:
    return _reason(event).startswith(_REMOTE_REASONS)


def _host(mx: str | None) -> str | None:
    """The name of ``name[ip]:port``."""
    return (mx.partition("[")[0] or None) if mx else None


def _clock(when: datetime, last: datetime | None) -> str:
    when = _utc(when)
    if last is not None and _utc(last).date() != when.date():
        return when.strftime("%Y-%m-%d %H:%M UTC")
    return when.strftime("%H:%M UTC")


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _one_line(text: str) -> str:
    """Control characters (CR, LF, NUL...) as escapes: the diagnosis is always one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
