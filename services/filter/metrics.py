"""Prometheus metrics of the filter service (module level: registered once per process).

Labels are low-cardinality by construction: ``verdict`` is one of the outcome
or verdict names below, ``filter`` a name from ``[filter] chain``
(operator-chosen), ``result`` one of a fixed set. Nothing a client sent
becomes a label.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PASSED = "passed"
REJECTED = "rejected"
DEFERRED = "deferred"
DISCARDED = "discarded"
PARKED = "parked"
TIMEOUT = "timeout"
FAILED = "failed"
OUTCOMES = (PASSED, REJECTED, DEFERRED, DISCARDED, PARKED, TIMEOUT, FAILED)

MESSAGES = Counter(
    "postline_filter_messages_total",
    "Messages the filter chain finished with, by outcome "
    "(passed, rejected, deferred, discarded, parked, timeout, failed).",
    ["verdict"],
)
DECISIONS = Counter(
    "postline_filter_decisions_total",
    "Decisions of each filter: continue, accept, reject, defer, discard; error when it "
    "raised, timeout when the message's budget ran out in it.",
    ["filter", "verdict"],
)
FILTER_SECONDS = Histogram(
    "postline_filter_duration_seconds",
    "Time one filter spent on one message.",
    ["filter"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60),
)
DKIM_MESSAGES = Counter(
    "postline_filter_dkim_messages_total",
    "Messages the dkim filter saw: signed, or unsigned (no key for the From: domain, "
    "or no single From: domain).",
    ["result"],
)
DKIM_KEY_LOADS = Counter(
    "postline_filter_dkim_key_loads_total",
    "DKIM key files (re)loaded after a change: ok, or error (the previous key stays).",
    ["result"],
)
SCANNER_ERRORS = Counter(
    "postline_filter_scanner_errors_total",
    "Scans that failed (unreachable, timeout, bad answer), by filter and what on_error did.",
    ["filter", "action"],
)

for _verdict in OUTCOMES:
    MESSAGES.labels(_verdict)  # every series exists from the start, at 0
for _result in ("signed", "unsigned"):
    DKIM_MESSAGES.labels(_result)
for _result in ("ok", "error"):
    DKIM_KEY_LOADS.labels(_result)
