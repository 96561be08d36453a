"""The declarative topology: names, arguments and tiers."""

from __future__ import annotations

import json

from postline.topology import (
    CONTROL_MAX_AGE,
    INITIAL_CLUSTER_SIZE,
    INITIAL_GROUP_SIZE,
    TIER_HEADER,
    Stage,
    Topology,
    adopt_existing,
    build_topology,
    describe,
    to_definitions,
)


def topology(quorum_size: int = 3) -> Topology:
    return build_topology(
        "ns", (60, 300, 300, 7200), delivery_limit=5, max_queue_length=100, quorum_size=quorum_size
    )


def test_one_tier_per_distinct_delay_named_by_its_duration() -> None:
    topo = topology()
    assert topo.tiers == ("1m", "5m", "2h")
    ttl = {q.name: q.arguments.get("x-message-ttl") for q in topo.queues}
    assert ttl["ns.retry.1m"] == 60_000
    assert ttl["ns.retry.2h"] == 7_200_000


def test_every_queue_but_the_control_stream_is_a_quorum_queue_prefixed_by_the_namespace() -> None:
    topo = topology()
    for queue in topo.queues:
        assert queue.name.startswith("ns.")
        expected = "stream" if queue.name == topo.control_stream else "quorum"
        assert queue.arguments["x-queue-type"] == expected, queue.name


def test_the_control_stream_keeps_records_for_its_max_age_without_quorum_arguments() -> None:
    topo = topology()
    args = next(q for q in topo.queues if q.name == "ns.control").arguments
    assert args == {"x-queue-type": "stream", "x-max-age": CONTROL_MAX_AGE, INITIAL_CLUSTER_SIZE: 3}
    other = build_topology("ns", (60,), delivery_limit=5, max_queue_length=9, control_max_age="2D")
    assert next(q for q in other.queues if q.name == "ns.control").arguments["x-max-age"] == "2D"


def test_held_mail_dead_letters_to_deliver_when_its_expiration_ends() -> None:
    topo = topology()
    args = next(q for q in topo.queues if q.name == topo.held_queue).arguments
    assert topo.held_queue == "ns.held"
    assert args["x-dead-letter-exchange"] == "ns.work"
    assert args["x-dead-letter-routing-key"] == "deliver"
    assert args["x-dead-letter-strategy"] == "at-least-once"
    assert "x-message-ttl" not in args
    assert not [b for b in topo.bindings if b.queue == topo.held_queue], "default exchange only"


def test_the_parked_log_gets_a_copy_of_every_parked_message() -> None:
    topo = topology()
    assert topo.parked_log_queue == "ns.parked.log"
    fanout = {b.queue for b in topo.bindings if b.exchange == topo.parked_queue}
    assert fanout == {"ns.parked", "ns.parked.log"}


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
    assert len(definitions["queues"]) == 3 + 3 + 1 + 3  # work, tiers, parked, log/held/control
    assert {e["name"] for e in definitions["exchanges"]} == {"ns.work", "ns.delay", "ns.parked"}
    assert "ns.work -> ns.deliver  (deliver)" in describe(topology())


def test_every_queue_is_created_with_the_configured_initial_group_size() -> None:
    for queue in topology(quorum_size=5).queues:
        size = queue.arguments.get(INITIAL_GROUP_SIZE, queue.arguments.get(INITIAL_CLUSTER_SIZE))
        assert size == 5, queue.name


# RabbitMQ 3.10's refusals, verbatim (queue created without the argument, then with 3).
REFUSED_NONE = (
    "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'ns.submit'"
    " in vhost '/': received the value '3' of type 'byte' but current is none"
)
REFUSED_OTHER = (
    "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'ns.submit'"
    " in vhost '/': received '5' but current is '3'"
)
REFUSED_LIMIT = (
    "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'ns.submit'"
    " in vhost '/': received the value '4' of type 'byte' but current is none"
)


def test_an_existing_queues_initial_group_size_is_adopted_whatever_it_was() -> None:
    args = {"x-queue-type": "quorum", INITIAL_GROUP_SIZE: 3, "x-delivery-limit": 5}
    assert adopt_existing(args, REFUSED_NONE) == (
        INITIAL_GROUP_SIZE,
        {"x-queue-type": "quorum", "x-delivery-limit": 5},
    )
    five = {**args, INITIAL_GROUP_SIZE: 5}
    assert adopt_existing(five, REFUSED_OTHER) == (INITIAL_GROUP_SIZE, args)


def test_any_other_refused_argument_is_not_adopted() -> None:
    args = {"x-queue-type": "quorum", INITIAL_GROUP_SIZE: 3, "x-delivery-limit": 4}
    assert adopt_existing(args, REFUSED_LIMIT) is None
    assert adopt_existing(args, "NOT_FOUND - no queue 'ns.submit'") is None
    adopted = {"x-queue-type": "quorum", "x-delivery-limit": 4}
    assert adopt_existing(adopted, REFUSED_NONE) is None, "already adopted: a loop, not a fix"
