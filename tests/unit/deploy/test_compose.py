"""docker-compose.yml: valid per the Compose Specification and consistent with Postline.

The schema is vendored in deploy/schemas/ (see its README), so this runs offline.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from postline.app.cli import SERVICES as CLI_SERVICES
from postline.app.settings import load_settings
from tests.unit.deploy.files import DEPLOY, ROOT, SERVICES, Doc, compose_settings, load_yaml

CONFIG_IN_CONTAINER = "/etc/postline/postline.toml"


@pytest.fixture(scope="module")
def compose() -> Doc:
    doc: Doc = load_yaml(ROOT / "docker-compose.yml")
    return doc


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _postline_services(compose: Doc) -> dict[str, Doc]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith("postline:")
    }


def _bind_mounts(service: Doc) -> dict[str, Path]:
    """Container path -> repository file, for ``./path:/container[:ro]`` volumes."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_compose_file_is_valid_against_the_compose_spec_schema(compose: Doc) -> None:
    errors = [f"{e.json_path}: {e.message}" for e in _validator().iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_schema_rejects_a_misspelled_service_key(compose: Doc) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["ingress"]["comand"] = broken["services"]["ingress"].pop("command")
    assert list(_validator().iter_errors(broken)), "the vendored schema accepted a typo"


def test_each_postline_service_runs_its_own_subcommand_with_the_mounted_config(
    compose: Doc,
) -> None:
    services = _postline_services(compose)
    assert sorted(services) == sorted(SERVICES)
    for name, service in services.items():
        assert name in CLI_SERVICES
        assert service["command"] == ["--config", CONFIG_IN_CONTAINER, name]
        mounts = _bind_mounts(service)
        assert CONFIG_IN_CONTAINER in mounts, f"{name}: the config file is not mounted"
        assert mounts[CONFIG_IN_CONTAINER] == DEPLOY / "compose" / "postline.toml"


def test_every_mounted_file_exists_and_postline_config_is_valid(compose: Doc) -> None:
    for name, service in compose["services"].items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name}: {source.relative_to(ROOT)} (for {target}) is missing"
    load_settings(DEPLOY / "compose" / "postline.toml")  # raises ConfigError when invalid


def test_healthchecks_call_readyz_on_the_metrics_port_of_their_service(compose: Doc) -> None:
    settings = compose_settings()
    for name, service in _postline_services(compose).items():
        command = " ".join(service["healthcheck"]["test"])
        match = re.search(r"http://([^/']+)(/[^']*)", command)
        assert match, f"{name}: the healthcheck calls no URL"
        url = urlsplit(f"http://{match.group(1)}{match.group(2)}")
        listen = getattr(settings, name).metrics_listen
        assert listen is not None and url.port == listen.port, name
        assert url.path == "/readyz", name


def test_postline_services_wait_for_a_healthy_broker(compose: Doc) -> None:
    assert "healthcheck" in compose["services"]["rabbitmq"]
    for name, service in _postline_services(compose).items():
        condition = service["depends_on"]["rabbitmq"]["condition"]
        assert condition == "service_healthy", name


def test_stop_grace_period_leaves_time_to_drain(compose: Doc) -> None:
    settings = compose_settings()
    for name, service in _postline_services(compose).items():
        grace = _seconds(service["stop_grace_period"])
        assert grace > getattr(settings, name).shutdown_grace, name


def test_broker_url_names_the_compose_broker_and_its_credentials(compose: Doc) -> None:
    rabbit = compose["services"]["rabbitmq"]["environment"]
    for name, service in _postline_services(compose).items():
        url = urlsplit(service["environment"]["POSTLINE_BROKER__URL"])
        assert url.hostname == "rabbitmq" and url.port == 5672, name
        assert (url.username, url.password) == (
            rabbit["RABBITMQ_DEFAULT_USER"],
            rabbit["RABBITMQ_DEFAULT_PASS"],
        )


def test_rabbitmq_serves_per_queue_metrics_and_outwaits_a_delivery_attempt() -> None:
    folder = DEPLOY / "compose" / "rabbitmq"
    plugins = folder.joinpath("enabled_plugins").read_text(encoding="utf-8")
    assert "rabbitmq_prometheus" in re.findall(r"\w+", plugins)
    conf = _rabbitmq_conf(folder / "rabbitmq.conf")
    assert conf["prometheus.return_per_object_metrics"] == "true"
    delivery = compose_settings().delivery
    assert (
        int(conf["consumer_timeout"]) > (delivery.attempt_timeout + delivery.shutdown_grace) * 1000
    )


def test_submissions_from_the_compose_network_may_relay(compose: Doc) -> None:
    settings = compose_settings()
    subnets = [
        ipaddress.ip_network(item["subnet"])
        for network in compose["networks"].values()
        for item in network["ipam"]["config"]
    ]
    for subnet in subnets:
        assert any(subnet.subnet_of(net) for net in settings.ingress.relay_networks), subnet  # type: ignore[arg-type]
    published = [str(port).rsplit(":", 1)[-1] for port in compose["services"]["ingress"]["ports"]]
    assert [str(listen.port) for listen in settings.ingress.listen] == published


def test_every_message_goes_to_the_local_sink(compose: Doc) -> None:
    smarthost = compose_settings().delivery.smarthost
    assert smarthost is not None
    assert smarthost.host in compose["services"], f"smarthost {smarthost} is no compose service"


def test_every_image_has_a_pinned_tag(compose: Doc) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"


def test_prometheus_scrapes_every_service_on_its_metrics_port(compose: Doc) -> None:
    settings = compose_settings()
    prometheus = load_yaml(DEPLOY / "compose" / "prometheus.yml")
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "postline"]
    seen = {}
    for static in job["static_configs"]:
        (target,) = static["targets"]
        host, port = target.rsplit(":", 1)
        seen[static["labels"]["service"]] = (host, int(port))
    expected = {}
    for name in SERVICES:
        listen = getattr(settings, name).metrics_listen
        assert listen is not None
        expected[name] = (name, listen.port)
    assert seen == expected
    mounts = _bind_mounts(compose["services"]["prometheus"])
    rule_targets = [target for target in mounts if target.startswith("/etc/prometheus/rules/")]
    assert rule_targets and all(Path(t).match(prometheus["rule_files"][0]) for t in rule_targets)


def test_grafana_provisioning_loads_the_dashboard(compose: Doc) -> None:
    mounts = _bind_mounts(compose["services"]["grafana"])
    providers = load_yaml(DEPLOY / "compose" / "grafana" / "dashboards.yml")["providers"]
    folders = [provider["options"]["path"] for provider in providers]
    dashboards = [t for t, s in mounts.items() if s == DEPLOY / "grafana" / "postline.json"]
    assert dashboards and any(str(Path(dashboards[0]).parent) == f for f in folders)


def _seconds(spelled: Any) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", str(spelled))
    assert match, f"unexpected duration {spelled!r}"
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def _rabbitmq_conf(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs
