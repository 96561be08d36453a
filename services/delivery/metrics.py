"""Prometheus metrics of the delivery service (module level: registered once per process).

Labels are low-cardinality by construction (fixed value sets below): no
recipient, domain or host ever becomes a label.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter(
    "postline_delivery_attempts_total",
    "Recipient delivery attempts by result (delivered, deferred, bounced, expired).",
    ["result"],
)
DNS_LOOKUPS = Counter(
    "postline_delivery_dns_lookups_total",
    "DNS lookups by record type (MX, A, AAAA) and result "
    "(ok, nodata, nxdomain, servfail, timeout, error, cached).",
    ["type", "result"],
)
SESSION_SECONDS = Histogram(
    "postline_delivery_session_seconds",
    "Wall-clock time of one delivery attempt to one destination (connect to last reply).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
QUEUED_TO_DELIVERED = Histogram(
    "postline_delivery_queued_to_delivered_seconds",
    "Time from ingress accepting a message to a recipient's delivery.",
    buckets=(0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 5 * 86400),
)
CONNECTIONS_OPEN = Gauge(
    "postline_delivery_connections_open",
    "Outbound SMTP connections open now (busy and idle).",
)
TRANSACTIONS = Counter(
    "postline_delivery_transactions_total",
    "SMTP transactions started, by connection (new, reused).",
    ["connection"],
)
TLS_SESSIONS = Counter(
    "postline_delivery_tls_sessions_total",
    "Outbound sessions by TLS outcome (verified, unverified, plaintext, failed).",
    ["result"],
)
DSN_SENT = Counter(
    "postline_delivery_dsn_total",
    "Delivery status notifications (bounces) queued to envelope senders.",
)
DESTINATION_BUSY = Counter(
    "postline_delivery_destination_busy_total",
    "Messages requeued because their destination had no free session slot in time "
    "(the attempt is not counted against the retry schedule).",
)
OUT_OF_STEP = Counter(
    "postline_delivery_out_of_step_total",
    "Outbound sessions found out of step: input no command asked for arrived (a reply too "
    "many, replies sent early, unsolicited input). Never reused; a transaction still under "
    "way on it is deferred as a protocol error.",
)
MESSAGES = Counter(
    "postline_delivery_messages_total",
    "Messages taken from the deliver queue and finished (every outcome published).",
)
TLS_POLICY_RESULTS = Counter(
    "postline_delivery_tls_policy_results_total",
    "TLS outcomes under a policy, RFC 8460 style: policy (sts, tlsa, no-policy-found) and "
    "result (success, or an RFC 8460 result type such as validation-failure).",
    ["policy", "result"],
)
MTA_STS_FETCHES = Counter(
    "postline_delivery_mta_sts_fetches_total",
    "MTA-STS policy fetches (HTTPS) by result (ok, failed, invalid).",
    ["result"],
)
HOSTS_DOWN = Gauge(
    "postline_delivery_hosts_down",
    "Destination hosts skipped now after consecutive connection failures or timeouts.",
)
HOST_SKIPS = Counter(
    "postline_delivery_host_skips_total",
    "Connections not attempted because the destination host is down (in its back-off).",
)
CONVERSIONS = Counter(
    "postline_delivery_conversions_total",
    "Messages adapted to a server's extensions, by kind (7bit: 8-bit body made "
    "quoted-printable for a server without 8BITMIME; a-label: IDN domains sent as A-labels "
    "to a server without SMTPUTF8).",
    ["kind"],
)
OPERATOR_ACTIONS = Counter(
    "postline_delivery_operator_actions_total",
    "Operator actions (postline queue) applied to messages, by action (retry, release: an "
    "attempt a flush brought forward; delete, bounce, hold; expire: held past its lifetime).",
    ["action"],
)
DUPLICATES_DROPPED = Counter(
    "postline_delivery_duplicates_dropped_total",
    "Copies dropped because a done marker says the message was already handled (a copy "
    "left behind by an interrupted queue flush).",
)
DELAY_WARNINGS = Counter(
    "postline_delivery_delay_warnings_total",
    "Delay warnings (DSN with Action: delayed) queued to senders (delay_warning_after).",
)
