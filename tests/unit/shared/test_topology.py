"""The declarative topology: names, arguments and tiers."""

from __future__ import annotations

import json

from postline.topology import TIER_HEADER, Stage, Topology, build_topology, describe, to_definitions


def topology() -> Topology:
    return build_topology("ns", (60, 300, 300, 7200), delivery_limit=5, max_queue_length=100)


def test_one_tier_per_distinct_delay_named_by_its_duration() -> None:
    topo = topology()
    assert topo.tiers == ("1m", "5m", "2h")
    ttl = {q.name: q.arguments.get("x-message-ttl") for q in topo.queues}
    assert ttl["ns.retry.1m"] == 60_000
    assert ttl["ns.retry.2h"] == 7_200_000


def test_every_queue_is_a_quorum_queue_prefixed_by_the_namespace() -> None:
    for queue in topology().queues:
        assert queue.name.startswith("ns.")
        assert queue.arguments["x-queue-type"] == "quorum"


def test_work_queues_park_after_the_delivery_limit_without_losing_messages() -> None:
    topo = topology()
    for stage in Stage:
        args = next(q for q in topo.queues if q.name == topo.queue_name(stage)).arguments
        assert args["x-delivery-limit"] == 5
        assert args["x-dead-letter-exchange"] == "ns.parked"
        assert args["x-dead-letter-strategy"] == "at-least-once"
        assert args["x-overflow"] == "reject-publish"


def test_tiers_dead_letter_back_to_the_work_exchange_under_the_original_key() -> None:
    topo = topology()
    tier = next(q for q in topo.queues if q.name == "ns.retry.5m").arguments
    assert tier["x-dead-letter-exchange"] == topo.work_exchange
    assert "x-dead-letter-routing-key" not in tier
    binding = next(b for b in topo.bindings if b.queue == "ns.retry.5m")
    assert binding.exchange == topo.delay_exchange
    assert binding.arguments == {"x-match": "all", TIER_HEADER: "5m"}


def test_definitions_export_is_json_with_every_object() -> None:
    definitions = json.loads(json.dumps(to_definitions(topology())))
    assert len(definitions["queues"]) == 3 + 3 + 1
    assert {e["name"] for e in definitions["exchanges"]} == {"ns.work", "ns.delay", "ns.parked"}
    assert "ns.work -> ns.deliver  (deliver)" in describe(topology())
