"""Ingress metrics (prometheus_client default registry, defined once per process).

Labels take values from small fixed sets chosen by the code (listener kind,
result names, reply classes); nothing a client sends ever becomes a label.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Counter(
    "postline_ingress_connections_total",
    "Connections accepted by a listener, by listener kind (plain or implicit_tls).",
    ["listener"],
)
CONNECTIONS_REFUSED = Counter(
    "postline_ingress_connections_refused_total",
    "Connections closed before the greeting, by reason.",
    ["reason"],
)
ACTIVE_SESSIONS = Gauge("postline_ingress_active_sessions", "SMTP sessions open right now.")
TLS_HANDSHAKES = Counter(
    "postline_ingress_tls_handshakes_total",
    "TLS handshakes by mode (starttls, implicit) and result (ok, failed).",
    ["mode", "result"],
)
AUTH_RESULTS = Counter(
    "postline_ingress_auth_total",
    "AUTH attempts by mechanism (PLAIN, LOGIN, other) and result.",
    ["mechanism", "result"],
)
AUTH_LOCKOUTS = Counter(
    "postline_ingress_auth_lockouts_total",
    "Brute-force lockouts started, by scope (ip: a client address; user: one user from "
    "one client network).",
    ["scope"],
)
REJECTIONS = Counter(
    "postline_ingress_rejections_total",
    "Envelope commands refused by policy or limits, by reason.",
    ["reason"],
)
MESSAGES = Counter(
    "postline_ingress_messages_total",
    "Messages at end of DATA by result (queued, not_queued, unconfirmed: sent but not "
    "confirmed in time, may be queued; refused_content) and reply class (2xx, 4xx, 5xx).",
    ["result", "reply_class"],
)
MESSAGE_SIZE = Histogram(
    "postline_ingress_message_size_bytes",
    "Size of messages queued, in bytes.",
    buckets=(1e3, 4e3, 16e3, 64e3, 256e3, 1e6, 4e6, 16e6, 64e6),
)
PUBLISH_SECONDS = Histogram(
    "postline_ingress_publish_seconds",
    "Time from end of DATA to the broker's confirm, in seconds.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
INTERNAL_ERRORS = Counter(
    "postline_ingress_internal_errors_total",
    "Unexpected errors answered with 451 4.3.0.",
)
TLS_RELOADS = Counter(
    "postline_ingress_tls_reloads_total",
    "Certificate reloads by result (ok, failed).",
    ["result"],
)
TLS_CERTIFICATE_EXPIRY = Gauge(
    "postline_ingress_tls_certificate_expiry_timestamp_seconds",
    "When the certificate ingress serves expires (notAfter, Unix time); 0 without TLS.",
)


def reply_class(code: int) -> str:
    """``250`` -> ``"2xx"``."""
    return f"{code // 100}xx"


STARTTLS_INJECTIONS = Counter(
    "postline_ingress_starttls_injections_total",
    "STARTTLS commands followed by input before our 220 (discarded, never read as encrypted).",
)
REFUSED_EVENTS_DROPPED = Counter(
    "postline_ingress_refused_events_dropped_total",
    "Refused events dropped, not published: the buffer was full, the broker was not "
    "connected or did not confirm them. The SMTP replies were sent regardless.",
)
