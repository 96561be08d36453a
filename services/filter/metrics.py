"""Prometheus metrics of the filter service (module level: registered once per process).

Labels are low-cardinality by construction: ``verdict`` is one of the outcome
names below and ``filter`` a name from ``[filter] chain`` (operator-chosen).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PASSED = "passed"
REJECTED = "rejected"
DEFERRED = "deferred"
TIMEOUT = "timeout"
FAILED = "failed"

MESSAGES = Counter(
    "postline_filter_messages_total",
    "Messages the filter chain finished with, by outcome "
    "(passed, rejected, deferred, timeout, failed).",
    ["verdict"],
)
FILTER_SECONDS = Histogram(
    "postline_filter_duration_seconds",
    "Time one filter spent on one message.",
    ["filter"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60),
)

for _verdict in (PASSED, REJECTED, DEFERRED, TIMEOUT, FAILED):
    MESSAGES.labels(_verdict)  # every series exists from the start, at 0
