"""reliability.md H: a three-node cluster loses nodes under load and loses no mail.

One scenario under steady SMTP load, the four services as separate processes
connected to all three nodes (``[broker] url`` lists them):

1. ``kill -9`` of the node leading ``submit`` (``rabbitmq-queues quorum_status``),
   load goes on, then it is restarted;
2. the same to the node leading ``deliver`` (another node if that is the same);
3. two nodes killed at once: the queues lose their majority, so every message
   submitted from then on is answered ``451 4.3.0``, never ``250``; both return.

Then the ledger (reliability.md): every ``250`` is delivered or bounced, 0 lost;
duplicates are counted and bounded by what the workers held unacknowledged when
a node died (the allowed cause: an ack lost with its node); every service is
still the process it was, ready, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import Scale
from tests.cluster.rabbit import Node, RabbitCluster, wait_for
from tests.cluster.scenario import (
    Load,
    Services,
    Timeline,
    exported_names,
    probe,
    queue_report,
)
from tests.support.broker import new_namespace
from tests.support.dns_server import DnsServer
from tests.support.ledger import Ledger, Report
from tests.support.sink import SmtpSink

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]

PUBLISH_TIMEOUT = 5.0
FILTER_CONCURRENCY = 8
DELIVERY_CONCURRENCY = 8
WORK_QUEUES = ("submit", "deliver")


def sections(cluster: RabbitCluster, dns: DnsServer, smtp_port: int) -> dict[str, Any]:
    return {
        "broker": {
            "url": cluster.urls,
            "namespace": new_namespace(),
            "publish_timeout": f"{PUBLISH_TIMEOUT:g}s",
        },
        "ingress": {"relay_networks": ["127.0.0.1/32"], "max_messages_per_ip": 0},
        "filter": {"concurrency": FILTER_CONCURRENCY},
        "delivery": {
            "dns_nameservers": [dns.address],
            "smtp_port": smtp_port,
            "retry_schedule": "1s",
            "max_queue_lifetime": "1h",
            "deny_private_destinations": False,
            "concurrency": DELIVERY_CONCURRENCY,
        },
    }


class Scenario:
    """The cluster, the services and the load of one run, and what happened."""

    def __init__(self, cluster: RabbitCluster, services: Services, scale: Scale) -> None:
        self.cluster = cluster
        self.services = services
        self.scale = scale
        self.ledger = Ledger()
        self.load = Load(self.ledger, services.ingress.smtp_port, scale.clients)
        self.timeline = Timeline()
        self.namespace = services.ingress.config["broker"]["namespace"]
        self.faults = 0
        self.outage_replies: list[tuple[int, str]] = []
        self.depths: dict[str, int] = {}
        self.parked: set[str] = set()

    def queue(self, stage: str) -> str:
        return f"{self.namespace}.{stage}"

    def accepted_grows_by(self, count: int, within: float, what: str) -> None:
        target = len(self.ledger.accepted) + count
        wait_for(lambda: len(self.ledger.accepted) >= target, within, what)
        self.note(what)

    def note(self, what: str) -> None:
        self.timeline.note(f"{what} (accepted {len(self.ledger.accepted)})")

    def healthy(self) -> bool:
        """Every queue led by a running node, and every service ready."""
        running = {node.name for node in self.cluster.running_nodes()}
        leaders = [self.cluster.leader_name(self.queue(stage)) for stage in WORK_QUEUES]
        return all(name in running for name in leaders) and self.services.ready()

    def assert_services_alive(self) -> None:
        assert not self.services.exited(), self.services.logs()

    def hold_until(self, since: float) -> None:
        """The fault lasts ``scale.hold`` seconds at least: an outage of a known length."""
        time.sleep(max(0.0, since + self.scale.hold - time.monotonic()))

    def kill_and_restart(self, node: Node, why: str) -> None:
        self.cluster.kill(node)
        killed = time.monotonic()
        self.faults += 1
        self.note(f"kill -9 {node.name} ({why})")
        wait_for(self.healthy, 60, "new leaders and every service ready again")
        self.note("leaders elected on the other nodes, services ready")
        self.accepted_grows_by(self.scale.per_phase, 180, "load goes on with a node down")
        self.hold_until(killed)
        self.cluster.start(node)
        self.note(f"restarted {node.name}")
        wait_for(self.healthy, 60, "the cluster whole again")
        self.accepted_grows_by(self.scale.per_phase, 180, "load goes on with every node back")
        self.assert_services_alive()

    def lose_the_majority(self, survivor: Node) -> None:
        down = [node for node in self.cluster.nodes if node is not survivor]
        for node in down:
            self.cluster.kill(node)
        self.faults += 1
        self.note(f"kill -9 {' and '.join(n.name for n in down)} at once: no majority")
        # A 250 may still come for what a majority had taken before the kill; anything in
        # flight is answered within the publish timeout, so from then on none may come.
        frozen_at = time.monotonic() + PUBLISH_TIMEOUT + 5
        for n in range(5):
            self.outage_replies.append(probe(self.services.ingress.smtp_port, f"o{n}@ok.test"))
            if n == 1:
                time.sleep(max(0.0, frozen_at - time.monotonic()))  # a known settling time
                frozen = len(self.ledger.accepted)
        assert len(self.ledger.accepted) == frozen, "250 answered while the queues had no majority"
        self.note(f"replies without a majority: {sorted({c for c, _ in self.outage_replies})}")
        for node in down:
            self.cluster.spawn(node)
        for node in down:
            self.cluster.await_startup(node)
        self.note("both nodes back")
        wait_for(self.healthy, 120, "the cluster whole and every service ready")
        self.accepted_grows_by(self.scale.per_phase, 180, "load goes on after the majority returns")
        self.assert_services_alive()

    def timeline_now(self) -> float:
        return time.monotonic() - self.timeline.started

    def settle(self, sink: SmtpSink, within: float) -> Report:
        """Wait until every accepted message is delivered, bounced or parked (or ``within``)."""

        def failed() -> set[str]:
            return {str(line.get("recipient")) for line in self.services.audit.trail("failure")}

        def report() -> Report:
            return self.ledger.reconcile(list(sink.messages), failed())

        def settled() -> bool:
            self.depths, parked = asyncio.run(queue_report(self.cluster.urls[0], self.queues()))
            self.parked |= parked
            return not set(report().lost) - self.parked and not self.depths_in_flight()

        with contextlib.suppress(AssertionError):  # the report's assertion names what is missing
            wait_for(settled, within, "every accepted message to end somewhere", step=2)
        final = report()
        return replace(final, lost=sorted(set(final.lost) - self.parked))

    def queues(self) -> list[str]:
        tiers = [f"retry.{tier}" for tier in ("1s",)]
        return [self.queue(q) for q in (*WORK_QUEUES, "events", *tiers, "parked")]

    def depths_in_flight(self) -> int:
        return sum(n for name, n in self.depths.items() if not name.endswith(".parked"))


def assert_deploy_names_only_exported_metrics(run: Scenario) -> None:
    """deploy/'s alerts and dashboard query only series this live system exports."""
    from tests.unit.deploy.promql import dashboard_expressions, rule_expressions, selectors

    live: set[str] = {"up"}  # written by Prometheus itself
    for service in run.services.processes.values():
        live |= exported_names(service.metrics(service.services[0]))
    for node in run.cluster.running_nodes():
        live |= exported_names(run.cluster.prometheus(node))
    for expr in rule_expressions() + dashboard_expressions():
        for selector in selectors(expr):
            assert selector.metric in live, f"{selector.metric} (in {expr!r}) is not exported"


def test_a_three_node_cluster_loses_nodes_under_load_without_losing_mail(
    cluster: RabbitCluster,
    dns: DnsServer,
    sink: SmtpSink,
    smtp_port: int,
    scale: Scale,
    tmp_path: Path,
) -> None:
    services = Services(tmp_path, sections(cluster, dns, smtp_port))
    try:
        services.start()
        scenario(Scenario(cluster, services, scale), sink, tmp_path)
        assert services.stop() == dict.fromkeys(services.processes, 0)
    finally:
        services.kill()


def scenario(run: Scenario, sink: SmtpSink, tmp_path: Path) -> None:
    cluster, services, scale = run.cluster, run.services, run.scale
    run.note(f"services ready on a {len(cluster.nodes)}-node cluster, scale {scale.name}")
    everyone = {node.name for node in cluster.nodes}
    for stage in WORK_QUEUES:  # [broker] quorum_size 3: replicated on every node
        assert cluster.members(run.queue(stage)) == everyone
    run.load.start()
    try:
        run.accepted_grows_by(scale.per_phase, 120, "steady load")
        first = cluster.leader(run.queue("submit"))
        run.kill_and_restart(first, f"leader of {run.queue('submit')}")
        second = cluster.leader(run.queue("deliver"))
        if second is first:
            second = next(node for node in cluster.nodes if node is not first)
        run.kill_and_restart(second, f"leader of {run.queue('deliver')} or another node")
        survivor = next(node for node in cluster.nodes if node not in (first, second))
        run.lose_the_majority(survivor)
    finally:
        run.load.stop()
        run.note("load stopped")
    report = run.settle(sink, 180)
    run.note("every accepted message delivered or bounced")
    assert_deploy_names_only_exported_metrics(run)

    lost = sorted(run.ledger.accepted[tid] for tid in report.lost)
    assert report.lost == [], (
        f"lost {len(report.lost)} of {report.accepted}: {lost[:20]}; queues {run.depths}"
    )
    assert not {code for code in run.ledger.refused if code != 451}, run.ledger.refused
    assert run.outage_replies and all(
        code == 451 and "4.3.0" in text for code, text in run.outage_replies
    ), run.outage_replies
    unacked_per_fault = FILTER_CONCURRENCY + DELIVERY_CONCURRENCY
    assert report.duplicates <= run.faults * unacked_per_fault, report
    assert services.same_processes() and services.ready(), "a service restarted"
    summary = {
        "scale": scale.name,
        "accepted": report.accepted,
        "lost": len(report.lost),
        "duplicates": report.duplicates,
        "parked": len(run.parked),
        "refused": dict(run.ledger.refused),
        "client_errors": run.ledger.errors,
        "outage_replies": sorted({f"{code} {text[:40]}" for code, text in run.outage_replies}),
        "seconds": round(run.timeline_now(), 1),
        "timeline": list(run.timeline.lines()),
    }
    print(json.dumps(summary, indent=2))
    (tmp_path / "summary.json").write_text(json.dumps(summary, indent=2))
