"""What the kustomizations render: valid objects, and the overlays' promises kept.

Every kustomization (base, monitoring, overlays/dev, overlays/production) is
built with ``kubectl kustomize``. Built-in kinds are validated by
kubernetes-validate (strict); KEDA and Prometheus Operator objects against the
JSON Schemas vendored in deploy/schemas/crds (strict: unknown fields fail).
The RabbitMQ operators publish no schema that a registry carries
(deploy/schemas/README.md): their objects get the structural checks below.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from postline.app.settings import load_settings, topology_for
from tests.unit.deploy.files import (
    DEPLOY,
    KUSTOMIZATIONS,
    KUSTOMIZE,
    Doc,
    kubernetes_settings,
    rendered,
    rendered_find,
)
from tests.unit.deploy.test_kubernetes import KUBERNETES_VERSIONS

pytestmark = pytest.mark.skipif(KUSTOMIZE is None, reason="needs kubectl or kustomize")

CRD_SCHEMAS = DEPLOY / "schemas" / "crds"
# Kinds whose schema is not vendored (none is published in a registry) and the spec
# fields their operators' v1beta1 CRDs define, checked by hand.
RABBITMQ_SPEC_FIELDS = {
    "RabbitmqCluster": {
        "replicas", "image", "imagePullSecrets", "service", "persistence", "resources",
        "affinity", "tolerations", "rabbitmq", "tls", "override", "skipPostDeploySteps",
        "terminationGracePeriodSeconds", "delayStartSeconds", "secretBackend",
    },
    "User": {"tags", "rabbitmqClusterReference", "importCredentialsSecret"},
    "Permission": {"vhost", "user", "userReference", "permissions", "rabbitmqClusterReference"},
}  # fmt: skip
RABBITMQ_API = "rabbitmq.com/v1beta1"


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator | None:
    path = CRD_SCHEMAS / f"{api_version.replace('/', '-')}-{kind}.json"
    if not path.exists():
        return None
    return jsonschema.Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))


def objects() -> list[Any]:
    return [
        pytest.param(folder, doc, id=f"{folder}:{doc['kind']}/{doc['metadata']['name']}")
        for folder in KUSTOMIZATIONS
        for doc in rendered(folder)
    ] if KUSTOMIZE else []  # fmt: skip


@pytest.mark.parametrize(("folder", "obj"), objects())
def test_rendered_object_is_valid_against_its_schema(folder: str, obj: Doc) -> None:
    validator = crd_validator(obj["apiVersion"], obj["kind"])
    if validator is not None:
        errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]
        assert not errors, errors[:5]
    elif obj["apiVersion"] == RABBITMQ_API:
        unknown = set(obj["spec"]) - RABBITMQ_SPEC_FIELDS[obj["kind"]]
        assert not unknown, f"{obj['kind']} has no spec field {sorted(unknown)}"
    else:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_vendored_crd_schemas_are_strict() -> None:
    scaled = copy.deepcopy(rendered_find("base", "ScaledObject", "postline-delivery"))
    validator = crd_validator(scaled["apiVersion"], scaled["kind"])
    assert validator is not None and validator.is_valid(scaled)
    scaled["spec"]["triggers"][0]["metadat"] = scaled["spec"]["triggers"][0].pop("metadata")
    assert not validator.is_valid(scaled), "a misspelt field must fail"


def test_every_operator_kind_has_a_schema_or_a_hand_check() -> None:
    for folder in KUSTOMIZATIONS:
        for obj in rendered(folder):
            builtin = "." not in obj["apiVersion"].split("/")[0] or obj["apiVersion"].startswith(
                ("apps/", "policy/", "networking.k8s.io/", "autoscaling/")
            )
            known = crd_validator(obj["apiVersion"], obj["kind"]) or obj["kind"] in (
                RABBITMQ_SPEC_FIELDS
            )
            assert builtin or known, f"{obj['kind']}: no schema vendored in deploy/schemas/crds"


@pytest.mark.parametrize("folder", ["overlays/dev", "overlays/production"])
def test_overlay_images_are_qualified_and_tagged_with_the_release(folder: str) -> None:
    for obj in rendered(folder):
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for item in obj["spec"]["template"]["spec"]["containers"]:
            name, _, tag = item["image"].rpartition(":")
            assert "." in name.split("/")[0], f"{item['image']}: name a registry"
            assert tag and tag != "latest", item["image"]


def test_dev_runs_one_of_everything_and_delivers_to_the_demo_sink() -> None:
    dev = rendered("overlays/dev")
    for obj in dev:
        if obj["kind"] == "ScaledObject":
            assert obj["spec"]["minReplicaCount"] == obj["spec"]["maxReplicaCount"] == 1
        if obj["kind"] in ("Deployment", "StatefulSet", "RabbitmqCluster"):
            assert obj["spec"].get("replicas", 1) == 1, obj["metadata"]["name"]
    delivery = rendered_find("overlays/dev", "Deployment", "postline-delivery")
    (main,) = delivery["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in main["env"]}
    sink = rendered_find("overlays/dev", "Service", "postline-sink")
    ports = {p["name"]: p["port"] for p in sink["spec"]["ports"]}
    assert env["POSTLINE_DELIVERY__SMARTHOST"] == f"[postline-sink]:{ports['smtp']}"


def test_production_has_disruption_budgets_and_the_proxy_protocol_ingress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ingress", "filter", "delivery"):
        pdb = rendered_find("overlays/production", "PodDisruptionBudget", f"postline-{name}")
        assert pdb["spec"]["maxUnavailable"] == 1
        scaled = rendered_find("overlays/production", "ScaledObject", f"postline-{name}")
        assert scaled["spec"]["minReplicaCount"] >= 3
    service = rendered_find("overlays/production", "Service", "postline-ingress")
    assert any("proxy" in key for key in service["metadata"]["annotations"])
    ingress = rendered_find("overlays/production", "Deployment", "postline-ingress")
    (main,) = ingress["spec"]["template"]["spec"]["containers"]
    for item in main["env"]:
        if item["name"] != "POSTLINE_SECRETS_DIR":  # a mount only the pod has
            monkeypatch.setenv(item["name"], item["value"])
    config = DEPLOY / "kubernetes" / "base" / "postline.toml"
    settings = load_settings(config)  # the env the pod gets, on the ConfigMap it mounts
    assert settings.ingress.proxy_protocol and settings.ingress.trusted_proxies


def test_broker_cluster_matches_the_queues_quorum_and_outlasts_a_delivery_attempt() -> None:
    settings = kubernetes_settings()
    cluster = rendered_find("overlays/production", "RabbitmqCluster", "postline-rabbitmq")
    assert cluster["spec"]["replicas"] == settings.broker.quorum_size == 3
    assert cluster["spec"]["persistence"]["storage"]
    anti = cluster["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"]
    config = cluster["spec"]["rabbitmq"]["additionalConfig"]
    timeout = re.search(r"^consumer_timeout = (\d+)$", config, re.MULTILINE)
    assert timeout and int(timeout[1]) / 1000 > settings.delivery.attempt_timeout
    assert "prometheus.return_per_object_metrics = true" in config


def test_postline_user_may_use_exactly_its_namespace() -> None:
    names = [q.name for q in topology_for(kubernetes_settings()).queues]
    permission = rendered_find("base", "Permission", "postline")
    assert permission["spec"]["userReference"]["name"] == "postline"
    for verb in ("configure", "write", "read"):
        pattern = re.compile(permission["spec"]["permissions"][verb])
        assert all(pattern.match(name) for name in names), verb
        assert not pattern.match("other.submit")


def test_keda_watches_the_queues_of_the_real_topology() -> None:
    topology = topology_for(kubernetes_settings())
    names = {q.name for q in topology.queues}
    for service in ("filter", "delivery"):
        scaled = rendered_find("base", "ScaledObject", f"postline-{service}")
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["type"] == "rabbitmq"
            assert trigger["metadata"]["queueName"] in names, trigger


def _policies(folder: str = "base") -> list[Doc]:
    return [obj for obj in rendered(folder) if obj["kind"] == "NetworkPolicy"]


def _selects(policy: Doc, labels: dict[str, str]) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def test_network_default_is_deny_and_only_ingress_smtp_is_open_to_everyone() -> None:
    policies = _policies()
    deny = [p for p in policies if not p["spec"]["podSelector"] and "ingress" not in p["spec"]]
    assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in deny)
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            if rule.get("from"):
                continue  # restricted to some peers
            component = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            assert component == "ingress", policy["metadata"]["name"]
            assert {p["port"] for p in rule["ports"]} == {"smtp", "smtps"}


def test_workers_reach_only_the_broker_dns_and_outbound_port_25() -> None:
    for component in ("filter", "delivery", "audit"):
        labels = {"app.kubernetes.io/name": "postline", "app.kubernetes.io/component": component}
        ports = set()
        for policy in _policies():
            if _selects(policy, labels):
                for rule in policy["spec"].get("egress", []):
                    ports |= {p["port"] for p in rule.get("ports", [])}
        allowed = {53, 5672, 5671} | ({25} if component == "delivery" else set())
        assert ports == allowed, component


def test_metrics_are_reachable_from_the_monitoring_namespace_only() -> None:
    (policy,) = [p for p in _policies() if p["metadata"]["name"] == "postline-metrics"]
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    assert peer == {"namespaceSelector": monitoring}
    assert [p["port"] for p in rule["ports"]] == ["metrics"]
