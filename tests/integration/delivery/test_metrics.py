"""The delivery metrics move with what happens (names and labels as docs/delivery.md lists)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from postline.models import EventKind
from tests.integration.delivery.conftest import Routed
from tests.support.sink import SmtpSink

pytestmark = pytest.mark.integration


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_attempts_dns_sessions_and_latency_are_counted(
    routed: Routed, sink: SmtpSink
) -> None:
    names = {
        "delivered": ("postline_delivery_attempts_total", {"result": "delivered"}),
        "bounced": ("postline_delivery_attempts_total", {"result": "bounced"}),
        "deferred": ("postline_delivery_attempts_total", {"result": "deferred"}),
        "mx_ok": ("postline_delivery_dns_lookups_total", {"type": "MX", "result": "ok"}),
        "mx_nx": ("postline_delivery_dns_lookups_total", {"type": "MX", "result": "nxdomain"}),
        "sessions": ("postline_delivery_session_seconds_count", {}),
        "latency": ("postline_delivery_queued_to_delivered_seconds_count", {}),
        "new": ("postline_delivery_transactions_total", {"connection": "new"}),
        "dsn": ("postline_delivery_dsn_total", {}),
        "plaintext": ("postline_delivery_tls_sessions_total", {"result": "plaintext"}),
    }
    before = {key: sample(name, **labels) for key, (name, labels) in names.items()}
    harness = await routed(retry_schedule="1m")
    await harness.send(["ok@x.test", "permfail@x.test", "tempfail@x.test", "z@nowhere.test"])
    await harness.flush(1)
    moved = {key: sample(name, **labels) - before[key] for key, (name, labels) in names.items()}
    assert moved == {
        "delivered": 1,
        "bounced": 2,
        "deferred": 1,
        "mx_ok": 1,
        "mx_nx": 1,
        "sessions": 2,  # one attempt per destination domain
        "latency": 1,
        "new": 1,
        "dsn": 1,
        "plaintext": 1,
    }
    assert len(harness.of(EventKind.BOUNCED)) == 2
