"""Every metric that rules, dashboard and docs name is one the services really export.

Imports ``postline.<service>.metrics`` (module-level metrics register in the
default prometheus_client registry) and holds the names, types and labels
against deploy/prometheus/rules.yml, deploy/grafana/postline.json and
docs/metrics.md. Every service must have its metrics module: a missing one fails.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY

from tests.unit.deploy.files import ROOT, SERVICES
from tests.unit.deploy.promql import (
    dashboard_expressions,
    grouping_labels,
    rule_expressions,
    selectors,
)

# Labels Prometheus attaches to every scraped series (the labelling contract of rules.yml).
TARGET_LABELS = {"job", "service", "instance", "pod", "namespace", "le"}
# Labels that would carry per-message or client-chosen values: unbounded cardinality.
FORBIDDEN_LABELS = {"recipient", "rcpt", "sender", "mail_from", "domain", "host", "mx", "user"}
FORBIDDEN_LABELS |= {"client", "client_ip", "ip", "address", "message_id", "helo", "reply", "text"}
# RabbitMQ's own series (rabbitmq_prometheus, per-object) that deploy/ may use.
RABBITMQ_METRICS = {
    "rabbitmq_queue_messages_ready": {"vhost", "queue"},
    "rabbitmq_queue_messages_unacked": {"vhost", "queue"},
    "rabbitmq_queue_messages": {"vhost", "queue"},
    "rabbitmq_queue_consumers": {"vhost", "queue"},
    "rabbitmq_queue_head_message_timestamp": {"vhost", "queue"},
    "rabbitmq_alarms_memory_used_watermark": set(),
    "rabbitmq_alarms_free_disk_space_watermark": set(),
    "rabbitmq_alarms_file_descriptor_limit": set(),
}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "info": ("_info",),
}


for _service in SERVICES:  # module-level metrics register in the default registry
    importlib.import_module(f"postline.{_service}.metrics")


def _families() -> dict[str, Any]:
    """Series name -> (family, label names) for everything in the default registry."""
    series: dict[str, Any] = {}
    collectors = getattr(REGISTRY, "_collector_to_names", {})
    for collector in collectors:
        labels = tuple(getattr(collector, "_labelnames", ()))
        for family in collector.describe() if hasattr(collector, "describe") else []:
            for suffix in SUFFIXES.get(family.type, ("",)):
                series[family.name + suffix] = (family, labels)
    for family in REGISTRY.collect():  # process_* and others without describe()
        for sample in family.samples:
            series.setdefault(sample.name, (family, tuple(sample.labels)))
    return series


def _postline_families() -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(family name, type, labels) of every postline_ metric the imported modules define."""
    seen = set()
    for family, labels in _families().values():
        if family.name.startswith("postline_") and family.name not in seen:
            seen.add(family.name)
            yield family.name, family.type, labels


def _referenced() -> list[tuple[str, Any]]:
    found = []
    for expr in rule_expressions() + dashboard_expressions():
        for selector in selectors(expr):
            found.append((expr, selector))
    return found


def _service_of(metric: str) -> str | None:
    match = re.match(r"postline_([a-z]+)_", metric)
    return match.group(1) if match else None


def test_every_service_defines_metrics() -> None:
    defined = {_service_of(name) for name, _, _ in _postline_families()}
    assert defined >= set(SERVICES), f"no postline_<service>_ metric: {set(SERVICES) - defined}"


def test_referenced_metrics_exist_with_the_labels_used() -> None:
    series = _families()
    for expr, selector in _referenced():
        name = selector.metric
        if name in RABBITMQ_METRICS:
            labels = RABBITMQ_METRICS[name]
        elif name == "up":  # written by Prometheus for every target
            labels = set()
        else:
            assert name in series, f"{name} (in {expr!r}) is not exported by any service"
            labels = set(series[name][1])
        used = {label for label, _, _ in selector.matchers} | grouping_labels(expr)
        unknown = used - labels - TARGET_LABELS - _other_selector_labels(expr, selector)
        assert not unknown, f"{name} has no label {sorted(unknown)} (in {expr!r})"


def test_postline_metrics_follow_the_naming_contract() -> None:
    for name, kind, labels in _postline_families():
        if kind == "counter":
            assert not name.endswith("_total"), name  # the family name drops _total
        if kind == "histogram":
            assert name.endswith("_seconds") or name.endswith("_bytes"), name
        assert not set(labels) & FORBIDDEN_LABELS, f"{name}: high-cardinality label {labels}"


def test_every_postline_metric_is_on_the_dashboard_and_in_the_docs() -> None:
    shown = " ".join(dashboard_expressions())
    docs = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for name, kind, _ in _postline_families():
        series = [name + suffix for suffix in SUFFIXES[kind]]
        assert any(re.search(rf"\b{s}\b", shown) for s in series), f"{name}: no dashboard panel"
        assert any(f"`{s}`" in docs for s in [name, *series]), f"{name}: not in docs/metrics.md"


def test_docs_describe_only_metrics_that_exist() -> None:
    docs = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    series = set(_families()) | {name for name, _, _ in _postline_families()}
    for name in set(re.findall(r"`(postline_[a-z0-9_]+)`", docs)):
        assert name in series, f"docs/metrics.md describes {name}, which no service exports"
    for name in RABBITMQ_METRICS:
        if name in " ".join(rule_expressions() + dashboard_expressions()):
            assert f"`{name}`" in docs, f"docs/metrics.md does not explain {name}"


def _other_selector_labels(expr: str, selector: Any) -> set[str]:
    """Labels of the other series in a binary expression (``by`` may name theirs)."""
    others: set[str] = set()
    for other in selectors(expr):
        if other.metric != selector.metric and other.metric in RABBITMQ_METRICS:
            others |= RABBITMQ_METRICS[other.metric]
    return others
