"""deploy/kubernetes: schema-valid manifests that agree with Postline's config.

Schemas come from the kubernetes-validate package (offline, strict mode: an
unknown field is an error). Operator objects (KEDA, Prometheus Operator,
RabbitMQ) are validated in test_kustomize.py, on what the overlays render.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest

from postline.app.settings import load_settings
from tests.unit.deploy.files import (
    KUBERNETES,
    KUSTOMIZATIONS,
    ROOT,
    SERVICES,
    Doc,
    container,
    find,
    kubernetes_files,
    kubernetes_objects,
    kubernetes_settings,
    load_yaml,
    pod_spec,
    workload,
    yaml_documents,
)

# The oldest Kubernetes release still maintained when this was written, and the newest known.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
OPERATOR_KINDS = {
    "PodMonitor",
    "ServiceMonitor",
    "PrometheusRule",
    "ScaledObject",
    "TriggerAuthentication",
    "RabbitmqCluster",
    "User",
    "Permission",
}
CONFIG_DIR = "/etc/postline/config"
SECRETS_DIR = "/run/secrets/postline"

OBJECTS = [
    pytest.param(doc, id=f"{path.relative_to(KUBERNETES)}:{doc['kind']}/{doc['metadata']['name']}")
    for path, doc in kubernetes_objects()
    if doc["kind"] not in OPERATOR_KINDS
]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("obj", OBJECTS)
def test_manifest_is_valid_against_the_kubernetes_schema(obj: Doc, version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_strict_schema_rejects_an_unknown_field() -> None:
    broken = copy.deepcopy(workload("delivery"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("folder", KUSTOMIZATIONS)
def test_kustomization_lists_every_manifest_of_its_folder(folder: str) -> None:
    directory = KUBERNETES / folder
    kustomization = load_yaml(directory / "kustomization.yaml")
    listed = {r for r in kustomization["resources"] if not r.startswith("..")}
    listed |= {p["path"] for p in kustomization.get("patches", []) if "path" in p}
    for generator in kustomization.get("configMapGenerator", []):
        for name in generator["files"]:
            assert (directory / name).is_file(), name
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_configmap_holds_a_valid_config_without_broker_credentials() -> None:
    settings = kubernetes_settings()  # raises ConfigError when invalid
    raw = tomllib.loads((KUBERNETES / "base" / "postline.toml").read_text(encoding="utf-8"))
    assert "url" not in raw.get("broker", {}), "the broker URL belongs in a Secret"
    assert settings.ingress.tls_cert is not None, "production ingress must offer TLS"
    assert settings.ingress.relay_networks == []


@pytest.mark.parametrize("service", SERVICES)
def test_service_runs_its_subcommand_with_the_configmap(service: str) -> None:
    obj = workload(service)
    main = container(obj, service)
    assert "command" not in main, "command would replace the image's postline entrypoint"
    assert main["args"] == ["--config", f"{CONFIG_DIR}/postline.toml", service]
    mounts = {m["name"]: m["mountPath"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    (config_volume,) = [name for name, path in mounts.items() if path == CONFIG_DIR]
    generated = load_yaml(KUBERNETES / "base" / "kustomization.yaml")["configMapGenerator"]
    assert volumes[config_volume]["configMap"]["name"] == generated[0]["name"]


@pytest.mark.parametrize("service", SERVICES)
def test_probes_and_metrics_port_match_metrics_listen(service: str) -> None:
    listen = getattr(kubernetes_settings(), service).metrics_listen
    main = container(workload(service), service)
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}
    assert listen is not None and ports["metrics"] == listen.port
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_ingress_ports_match_listeners_and_the_load_balancer_keeps_client_addresses() -> None:
    settings = kubernetes_settings().ingress
    main = container(workload("ingress"), "ingress")
    ports = {port["name"]: port["containerPort"] for port in main["ports"]}
    assert [ports["smtp"]] == [listen.port for listen in settings.listen]
    assert [ports["smtps"]] == [listen.port for listen in settings.listen_tls]
    service = find("Service", "postline-ingress", "base")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    targets = {port["port"]: port["targetPort"] for port in service["spec"]["ports"]}
    assert targets == {587: "smtp", 465: "smtps"}


@pytest.mark.parametrize("service", SERVICES)
def test_termination_grace_covers_prestop_and_shutdown_grace(service: str) -> None:
    obj = workload(service)
    main = container(obj, service)
    pre_stop = main.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    sleep = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
    grace = getattr(kubernetes_settings(), service).shutdown_grace
    assert pod_spec(obj)["terminationGracePeriodSeconds"] > sleep + grace
    if service == "ingress":
        assert sleep > 0, "ingress needs a preStop pause so the load balancer stops first"


def test_selectors_match_the_pod_labels_they_aim_at() -> None:
    for service in SERVICES:
        obj = workload(service)
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert _matches(obj["spec"]["selector"]["matchLabels"], labels)
        assert labels["app.kubernetes.io/component"] == service
        for _, other in kubernetes_objects("base"):
            if other["kind"] == "Service" and other["metadata"]["name"] == obj["metadata"]["name"]:
                assert _matches(other["spec"]["selector"], labels)
            if (
                other["kind"] == "PodDisruptionBudget"
                and other["metadata"]["name"] == (obj["metadata"]["name"])
            ):
                assert _matches(other["spec"]["selector"]["matchLabels"], labels)
    for _, other in kubernetes_objects("base"):
        if other["kind"] in ("Service", "PodDisruptionBudget"):
            name = other["metadata"]["name"]
            assert name.removeprefix("postline-") in SERVICES, f"{name} selects no workload"


@pytest.mark.parametrize("service", SERVICES)
def test_containers_are_locked_down_and_bounded(service: str) -> None:
    obj = workload(service)
    pod = pod_spec(obj)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for item in pod["containers"]:
        context = item["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(item["resources"][kind]), f"{service} {kind}"


def test_images_are_named_once_and_pulled_qualified_at_the_released_tag() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    version = project["project"]["version"]
    (image,) = load_yaml(KUBERNETES / "base" / "kustomization.yaml")["images"]
    assert image["newTag"] == version
    registry = image["newName"].split("/")[0]
    assert "." in registry or ":" in registry, "pull from a named registry, not Docker Hub"
    for service in SERVICES:
        for item in pod_spec(workload(service))["containers"]:
            assert item["image"] == image["name"], f"{service}: kustomize images sets it"


def test_ingress_mounts_the_files_its_config_names() -> None:
    settings = kubernetes_settings().ingress
    obj = workload("ingress")
    mounts = {m["mountPath"]: m for m in container(obj, "ingress")["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    secrets = _secret_examples()
    for path in (settings.tls_cert, settings.tls_key, settings.users_file):
        assert path is not None
        mount = mounts.get(str(path.parent))
        assert mount is not None, f"nothing is mounted at {path.parent}"
        assert "subPath" not in mount, "subPath mounts never see Secret updates"
        secret_name = volumes[mount["name"]]["secret"]["secretName"]
        assert path.name in secrets[secret_name]["stringData"], f"{secret_name} lacks {path.name}"


@pytest.mark.parametrize("service", SERVICES)
def test_broker_url_comes_from_the_secret_mounted_as_secrets_dir(service: str) -> None:
    obj = workload(service)
    main = container(obj, service)
    env = {item["name"]: item["value"] for item in main["env"]}
    assert env["POSTLINE_SECRETS_DIR"] == SECRETS_DIR
    (mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == SECRETS_DIR]
    volumes = {v["name"]: v for v in pod_spec(obj)["volumes"]}
    assert volumes[mount["name"]]["secret"]["secretName"] == "postline-broker"


def test_broker_secret_is_read_as_settings_from_a_kubernetes_style_mount(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubernetes mounts a Secret as symlinks into a timestamped ``..data`` folder."""
    data = _secret_examples()["postline-broker"]["stringData"]
    versioned = tmp_path / "..2030_01_01_00_00_00.000000001"
    versioned.mkdir()
    (tmp_path / "..data").symlink_to(versioned.name)
    for key, value in data.items():
        (versioned / key).write_text(value + "\n", encoding="utf-8")
        (tmp_path / key).symlink_to(f"..data/{key}")
    monkeypatch.setenv("POSTLINE_SECRETS_DIR", str(tmp_path))
    settings = load_settings(KUBERNETES / "base" / "postline.toml")
    assert settings.broker.url == data["broker__url"]


def test_secret_example_holds_placeholders_only() -> None:
    for name, secret in _secret_examples().items():
        for key, value in secret["stringData"].items():
            assert "REPLACE_ME" in value, f"{name}/{key} looks like a real secret"


def test_audit_is_one_stateful_writer_with_a_volume_at_trail_dir() -> None:
    audit = workload("audit")
    assert audit["kind"] == "StatefulSet" and audit["spec"]["replicas"] == 1
    trail_dir = str(kubernetes_settings().audit.trail_dir)
    mounts = {m["mountPath"]: m["name"] for m in container(audit, "audit")["volumeMounts"]}
    claims = [claim["metadata"]["name"] for claim in audit["spec"]["volumeClaimTemplates"]]
    assert mounts.get(trail_dir) in claims
    headless = find("Service", audit["spec"]["serviceName"], "base")
    assert headless["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("service", ["ingress", "filter", "delivery"])
def test_keda_owns_the_replica_count_and_no_cpu_hpa_is_left(service: str) -> None:
    deployment = find("Deployment", f"postline-{service}", "base")
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    scaled = find("ScaledObject", f"postline-{service}", "base")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 2 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["cooldownPeriod"] >= 300
    kinds = {doc["kind"] for _, doc in kubernetes_objects()}
    assert "HorizontalPodAutoscaler" not in kinds, "KEDA makes the HPAs"


def test_pod_monitor_scrapes_every_service_with_the_labels_rules_expect() -> None:
    monitor = find("PodMonitor", "postline", "monitoring")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    for service in SERVICES:
        obj = workload(service)
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert _matches(selector, labels), service
        names = [port["name"] for port in container(obj, service)["ports"]]
        assert endpoint["port"] in names, service
        assert labels[monitor["spec"]["jobLabel"]] == "postline"
    relabel = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
    assert relabel["service"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]


def test_every_yaml_file_parses_into_named_objects() -> None:
    files = kubernetes_files()
    assert len(files) >= 16
    for path in files:
        for doc in yaml_documents(path):
            assert doc["apiVersion"] and doc["kind"], path
            assert doc["kind"] == "Kustomization" or doc["metadata"]["name"], path


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def _secret_examples() -> dict[str, Doc]:
    return {
        doc["metadata"]["name"]: doc
        for path, doc in kubernetes_objects("examples")
        if doc["kind"] == "Secret" and path.name == "secrets.example.yaml"
    }
