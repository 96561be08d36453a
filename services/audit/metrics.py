"""Prometheus metrics of the audit service (module level: registered once per process).

Labels: ``kind`` is an ``EventKind`` value, ``trail`` one of the four file names.
The ``index`` metrics are about the message index (one transaction per batch).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from postline.models import EventKind

EVENTS = Counter(
    "postline_audit_events_total", "Events written to a trail (durably), by kind.", ["kind"]
)
DUPLICATES = Counter(
    "postline_audit_duplicates_total",
    "Redelivered events recognised by id and acknowledged without a second line.",
)
WRITE_ERRORS = Counter(
    "postline_audit_write_errors_total", "Failed trail writes (retried), by trail.", ["trail"]
)
WRITE_SECONDS = Histogram(
    "postline_audit_write_seconds",
    "Time to write and fsync one batch of lines to one trail file.",
    ["trail"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
INDEX_EVENTS = Counter(
    "postline_audit_index_events_total",
    "Events committed to the message index for the first time (redelivered ones not counted).",
)
INDEX_WRITE_ERRORS = Counter(
    "postline_audit_index_write_errors_total",
    "Failed index transactions (retried while the database is unavailable).",
)
INDEX_WRITE_SECONDS = Histogram(
    "postline_audit_index_write_seconds",
    "Time to write and commit one batch of events to the message index.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

for _kind in EventKind:
    EVENTS.labels(_kind.value)  # every series exists from the start, at 0
