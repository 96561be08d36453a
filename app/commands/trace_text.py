"""``postline trace`` as text: one message of the API's JSON in the guide's four steps.

``render(message)`` takes one message of the ``trace --json`` shape (the
audit API's ``{"messages": [...]}``) and returns its lines:

* a title: the queue id (or ``refused submission``), the state, sender,
  Subject and Message-ID;
* ``1 submitted``: client IP, HELO, auth user, TLS; or each refusal with the
  command, the envelope, the reply and how many like it;
* ``2 received``: queue id, size, time (or why there is none);
* ``3 filters and queue``: each filter decision and each delivery attempt
  with its time, MX host and IP, TLS, the remote's reply and the next attempt;
  parked, delay warnings and operator actions;
* ``4 delivered`` or ``4 not delivered``: per recipient the final reply (the
  remote's, which often carries its own queue id), the bounce or expiry, and
  to whom a DSN went;
* last, the message's ``Diagnosis:`` line as the API wrote it.

Every value from the JSON is shown with control characters escaped
(``clean``): a hostile HELO, subject or remote reply cannot move the cursor
or forge lines. Times are shown in UTC. Pure functions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]
BY_REMOTE = ("delivered", "bounced")
"""Final states the remote decided: shown as ``by <mx>``; others as ``last tried <mx>``."""
INDENT = "    "


def clean(value: object) -> str:
    """``value`` as one printable line: control characters as escapes (``\\r``, ``\\x1b``)."""
    text = "" if value is None else str(value)
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def when(value: object) -> str:
    """An ISO 8601 time as ``2026-03-04 05:06:07 UTC`` (``?`` when missing or unreadable)."""
    if not isinstance(value, str):
        return "?"
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return clean(value)
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def reply(value: object) -> str:
    """``{"code", "enhanced", "text"}`` as ``550 5.1.1 User unknown`` ('' for none)."""
    if not isinstance(value, dict):
        return ""
    parts = [str(value.get("code", "")), value.get("enhanced") or "", value.get("text") or ""]
    return clean(" ".join(part for part in parts if part))


def mx(event: Json) -> str:
    """The event's MX as ``name[ip]:port`` (``mx_host`` of a version 1 event)."""
    peer = event.get("mx")
    if isinstance(peer, dict) and peer.get("name"):
        label = str(peer["name"])
        if peer.get("ip"):
            label += f"[{peer['ip']}]"
            if peer.get("port"):
                label += f":{peer['port']}"
        return clean(label)
    return clean(event.get("mx_host") or "")


def tls(value: object) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384`` for an event's ``tls``, else ``no TLS``."""
    if isinstance(value, dict) and (value.get("version") or value.get("cipher")):
        text = " ".join(clean(value[k]) for k in ("version", "cipher") if value.get(k))
        if value.get("verified") is False:
            text += " (certificate not verified)"
        return text
    if isinstance(value, str) and value:
        return clean(value)
    return "no TLS"


def render(message: Json) -> list[str]:
    """The lines of one message (module docstring)."""
    events = [e for e in message.get("events") or [] if isinstance(e, dict)]
    return [
        title(message),
        *submitted(message, events),
        *received(message, events),
        *queue(events),
        *outcome(message, events),
        clean(message.get("diagnosis") or "Diagnosis: (none)"),
    ]


def title(message: Json) -> str:
    message_id = clean(message.get("message_id"))
    name = "refused submission" if message_id.startswith("refused-") else "message"
    parts = [f"{name} {message_id} ({clean(message.get('state'))})"]
    if message.get("partly_delivered"):
        parts.append("partly delivered")
    if message.get("mail_from") is not None:
        parts.append(f"from <{clean(message['mail_from'])}>")
    if message.get("subject"):
        parts.append(f'subject "{clean(message["subject"])}"')
    if message.get("header_message_id"):
        parts.append(f"Message-ID {clean(message['header_message_id'])}")
    return "  ".join(parts)


def submitted(message: Json, events: list[Json]) -> list[str]:
    refusals = [e for e in events if e.get("kind") == "refused"]
    first = refusals[0] if refusals else {}
    session = message.get("submission") or {}
    client = session.get("client_ip") or first.get("client_ip")
    helo = session.get("helo") or first.get("helo")
    tried = first.get("command") == "AUTH"  # its auth_user is the name tried, not logged in
    user = session.get("auth_user") or (None if tried else first.get("auth_user"))
    secured = session.get("tls") or first.get("tls")
    head = [
        f"client {clean(client) if client else '(unknown)'}",
        f"HELO {clean(helo)}" if helo else "no HELO",
        f"authenticated as {clean(user)}" if user else "not authenticated",
        tls(secured),
    ]
    lines = ["1 submitted          " + ", ".join(head)]
    lines += [INDENT + refusal(event) for event in refusals]
    return lines


def refusal(event: Json) -> str:
    command = clean(event.get("command") or "a command")
    envelope = []
    if event.get("mail_from") is not None:
        envelope.append(f"from <{clean(event['mail_from'])}>")
    rcpts = [event["recipient"]] if event.get("recipient") else event.get("rcpt_to") or []
    if rcpts:
        envelope.append("to " + ", ".join(f"<{clean(r)}>" for r in rcpts))
    said = reply(event.get("reply")) or "no reply (connection closed)"
    text = f"{when(event.get('at'))}  refused {command}"
    if event.get("command") == "AUTH" and event.get("auth_user"):
        text += f" as {clean(event['auth_user'])}"
    text += (" " + " ".join(envelope) if envelope else "") + f": {said}"
    if event.get("reason"):
        text += f" [{clean(event['reason'])}]"
    count = event.get("count")
    if isinstance(count, int) and count > 1:
        text += f" x{count}"
        if event.get("sampled"):
            text += " (repeats counted, the last one shown)"
    return text


def received(message: Json, events: list[Json]) -> list[str]:
    got = [e for e in events if e.get("kind") == "received"]
    if not got:
        if message.get("state") == "refused":
            return ["2 received           no: refused at submission, nothing was queued"]
        return ["2 received           no received event recorded (yet)"]
    event = got[0]
    size = event.get("size", message.get("size"))
    text = f"queue id {clean(event.get('message_id'))}"
    text += f", {size} bytes" if size is not None else ""
    text += f", {when(event.get('at'))}"
    lines = ["2 received           " + text]
    if event.get("reason"):
        lines.append(INDENT + f"note: {clean(event['reason'])}")
    return lines


def queue(events: list[Json]) -> list[str]:
    lines = [INDENT + text for event in events if (text := _queue_line(event))]
    if not lines:
        return ["3 filters and queue  (nothing recorded)"]
    return ["3 filters and queue", *lines]


def _queue_line(event: Json) -> str | None:
    show = _QUEUE_LINES.get(str(event.get("kind")))
    return f"{when(event.get('at'))}  {show(event)}" if show is not None else None


def attempt(event: Json) -> str:
    """One delivery attempt (or a filter deferral): where, how, what the remote said, next."""
    kind = clean(event.get("kind"))
    if event.get("service") == "filter":
        text = f"{kind} by the filter for <{clean(event.get('recipient'))}>"
    else:
        number = f"attempt {event['attempt']}" if event.get("attempt") else "attempt"
        text = f"{number} <{clean(event.get('recipient'))}>"
        where = mx(event)
        text += f" via {where}, {tls(event.get('tls'))}" if where else ", no host reached"
    text += f": {kind}"
    if event.get("reply"):
        text += f" {reply(event['reply'])}"
    if event.get("reason"):
        text += f" ({clean(event['reason'])})"
    if event.get("next_attempt_at"):
        text += f"; next attempt {when(event['next_attempt_at'])}"
    return text


def _filter_decision(event: Json) -> str:
    kind = clean(event.get("kind"))
    who = f" <{clean(event['recipient'])}>" if event.get("recipient") else ""
    said = f": {reply(event['reply'])}" if event.get("reply") else ""
    why = f" ({clean(event['reason'])})" if event.get("reason") else ""
    return f"{kind}{who}{said}{why}"


_QUEUE_LINES: dict[str, Callable[[Json], str]] = {
    "filtered": lambda e: f"filters passed it ({clean(e.get('reason') or 'no filter objected')})",
    "rejected": _filter_decision,
    "discarded": _filter_decision,
    "deferred": attempt,
    "delivered": attempt,
    "bounced": attempt,
    "expired": attempt,
    "delayed": lambda e: f"delay warning (DSN) sent: {clean(e.get('reason'))}",
    "parked": lambda e: f"parked from {clean(e.get('stage') or '?')}: {clean(e.get('reason'))}",
    "operator": lambda e: f"operator {clean(e.get('actor') or '?')}: {clean(e.get('action'))}",
}


def outcome(message: Json, events: list[Json]) -> list[str]:
    recipients = [r for r in message.get("recipients") or [] if isinstance(r, dict)]
    done = [r for r in recipients if r.get("state") == "delivered"]
    head = "4 delivered" if recipients and len(done) == len(recipients) else "4 not delivered"
    if not recipients:
        return [f"{head:<21}" + ("refused at submission" if message.get("state") else "")]
    lines = [head]
    for recipient in recipients:
        lines.append(INDENT + _final(recipient, events))
    lines += [INDENT + _dsn(event) for event in events if event.get("kind") == "dsn_sent"]
    return lines


def _final(recipient: Json, events: list[Json]) -> str:
    address = clean(recipient.get("address"))
    state = clean(recipient.get("state"))
    said = reply(recipient.get("reply"))
    address_of = recipient.get("address")
    mine = [e for e in events if address_of in (e.get("recipient"), *(e.get("rcpt_to") or ()))]
    last = next((e for e in reversed(mine) if e.get("kind") == state), None)
    text = f"<{address}> {state}"
    if last is not None:
        text = f"{when(last.get('at'))}  " + text
        if mx(last):
            text += f" by {mx(last)}" if state in BY_REMOTE else f", last tried {mx(last)}"
    text += f": {said}" if said else ""
    if state in ("deferred", "queued") and recipient.get("next_attempt_at"):
        text += f"; next attempt {when(recipient['next_attempt_at'])}"
    if recipient.get("attempts"):
        text += f" ({recipient['attempts']} attempt{'s' if recipient['attempts'] != 1 else ''})"
    return text


def _dsn(event: Json) -> str:
    failed = ", ".join(f"<{clean(r)}>" for r in event.get("rcpt_to") or [])
    to = f"<{clean(event.get('mail_from'))}>"
    return f"{when(event.get('at'))}  DSN sent to {to} for {failed or 'the failed recipients'}"
