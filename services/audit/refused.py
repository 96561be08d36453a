"""The words for a refusal at submission: why ingress refused, and what to do about it.

``refused_at_submission(event)`` turns a ``refused`` event into
``refused at submission: <why>``. The refusal is recognised by the event's
``reason`` (ingress's reason keys: ``relay_denied``, ``sender_not_owned``,
``auth_failed``, ``auth_locked``, ``rate_ip``, ``size_declared``,
``broker_unavailable``, ``max_sessions``, ``draining``...), else by the start
of ingress's reply text
(``Relay access denied``, ...); anything else shows its reason and reply as
they are. ``count`` and ``sampled`` say how many refusals the event stands for.
Pure; the audit service does not import ingress (services share only ``shared/``).
"""

from __future__ import annotations

from collections.abc import Callable

from postline.models import Event


def _ip(event: Event) -> str:
    return event.client_ip or "(unknown address)"


def _user(event: Event) -> str:
    return event.auth_user or "(unknown user)"


_REFUSALS: dict[str, Callable[[Event], str]] = {
    "relay_denied": lambda e: f"client {_ip(e)} is not in relay_networks and did not authenticate",
    "sender_not_owned": lambda e: (
        f"user {_user(e)} may not send as <{e.mail_from or ''}>; add the address to the "
        "user's senders"
    ),
    "auth_failed": lambda e: (
        f"client {_ip(e)} failed to authenticate as {_user(e)}: wrong user name or password"
    ),
    "auth_malformed": lambda e: f"client {_ip(e)} sent a malformed authentication response",
    "auth_locked": lambda e: (
        f"client {_ip(e)} is locked out after too many failed authentications; check its "
        "password, it may try again later"
    ),
    "auth_needs_tls": lambda e: (
        f"client {_ip(e)} tried to authenticate without TLS; it must use STARTTLS first"
    ),
    "rate_user": lambda e: f"user {_user(e)} sent more than max_messages_per_user",
    "rate_ip": lambda e: f"client {_ip(e)} sent more than max_messages_per_ip",
    "rate": lambda e: f"client {_ip(e)} exceeded the message rate limit",
    "too_many_recipients": lambda e: (
        "more recipients than max_recipients in one message; the client should send the "
        "rest in another message"
    ),
    "size": lambda e: "the message is larger than max_message_size",
    "content": lambda e: f"its content was refused: {e.reply.text if e.reply else 'bad content'}",
    "broker": lambda e: (
        "Postline could not queue it (the broker is unavailable); the client was told to "
        "try again later"
    ),
    "unconfirmed": lambda e: (
        "the broker did not confirm it in time; the client was told to try again, so it "
        "may arrive twice"
    ),
    "connections": lambda e: f"client {_ip(e)} opened too many connections",
    "max_sessions": lambda e: "ingress had max_sessions connections open; the client may retry",
    "draining": lambda e: "ingress was shutting down; the client may retry",
}
_ALIASES = {  # ingress's reason keys -> the explanation above
    "size_declared": "size",
    "header_too_big": "size",
    "bare_line_ending": "content",
    "nul_in_content": "content",
    "line_too_long": "content",
    "bad_content": "content",
    "broker_unavailable": "broker",
    "queueing_not_confirmed": "unconfirmed",
    "max_sessions_per_ip": "connections",
}
_REPLIES = (  # the start of ingress's reply text -> the explanation, for other reasons
    ("relay access denied", "relay_denied"),
    ("sender address not owned", "sender_not_owned"),
    ("authentication credentials invalid", "auth_failed"),
    ("too many authentication failures", "auth_locked"),
    ("encryption required for requested authentication", "auth_needs_tls"),
    ("message rate limit exceeded", "rate"),
    ("too many recipients", "too_many_recipients"),
    ("message size exceeds", "size"),
    ("message header section exceeds", "size"),
    ("message contains", "content"),
    ("local error; message not queued", "broker"),
    ("queueing not confirmed", "unconfirmed"),
    ("too many connections from your address", "connections"),
    ("too many connections", "max_sessions"),
    ("service shutting down", "draining"),
)


def refused_at_submission(event: Event) -> str:
    """``refused at submission: <why>`` for a ``refused`` event, by its reason or its reply."""
    key = _ALIASES.get(event.reason or "", event.reason or "")
    if key not in _REFUSALS and event.reply is not None:
        text = event.reply.text.lower()
        key = next((known for start, known in _REPLIES if text.startswith(start)), key)
    explain = _REFUSALS.get(key)
    if explain is not None:
        why = explain(event)
    else:
        said = f" ({event.reply})" if event.reply is not None else ""
        why = f"{event.reason or (event.command or 'the command') + ' refused'}{said}"
    if event.count is not None and event.count > 1:
        why += f" ({event.count} refusals like it{', sampled' if event.sampled else ''})"
    return f"refused at submission: {why}"
