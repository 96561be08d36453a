"""Loading configuration: file, environment, secrets, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from postline.app.settings import load_settings
from postline.settings import ConfigError
from postline.values import HostPort, NextHop


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("POSTLINE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "postline.toml"
    path.write_text(text)
    return path


def test_defaults_load_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.broker.namespace == "postline"
    assert settings.delivery.max_queue_lifetime == 5 * 86400
    assert settings.ingress.relay_networks == []


def test_a_file_sets_every_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[broker]
url = "amqp://u:p@rabbit:5672/vh"
namespace = "prod"
[ingress]
listen = ["0.0.0.0:587", "[::]:587"]
relay_networks = ["10.0.0.0/8", "2001:db8::/32"]
max_message_size = "10MiB"
[delivery]
retry_schedule = "1m,5m*2"
dns_nameservers = ["127.0.0.1:5353", "10.0.0.2"]
smarthost = "[relay.example]:587"
routes = { "Example.COM" = "[10.1.1.1]:2525" }
[audit]
trail_dir = "/var/lib/postline"
""",
    )
    settings = load_settings(path)
    assert settings.broker.namespace == "prod"
    assert settings.ingress.listen == [HostPort("0.0.0.0", 587), HostPort("::", 587)]
    assert settings.ingress.max_message_size == 10 * 1024 * 1024
    assert settings.delivery.retry_schedule == (60.0, 300.0, 300.0)
    assert settings.delivery.dns_nameservers == [
        HostPort("127.0.0.1", 5353),
        HostPort("10.0.0.2", 53),
    ]
    assert settings.delivery.smarthost == NextHop("relay.example", 587, False)
    assert settings.delivery.routes == {"example.com": NextHop("10.1.1.1", 2525, False)}


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[broker]\nnamespace = "from-file"\n')
    monkeypatch.setenv("POSTLINE_BROKER__NAMESPACE", "from-env")
    monkeypatch.setenv("POSTLINE_INGRESS__RELAY_NETWORKS", '["192.0.2.0/24"]')
    settings = load_settings(path)
    assert settings.broker.namespace == "from-env"
    assert [str(n) for n in settings.ingress.relay_networks] == ["192.0.2.0/24"]


def test_config_path_comes_from_postline_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POSTLINE_CONFIG", str(write(tmp_path, '[broker]\nnamespace = "viaenv"\n')))
    assert load_settings(None).broker.namespace == "viaenv"


def test_secret_files_supply_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "broker__url").write_text("amqps://user:s3cret@rabbit:5671/")
    monkeypatch.setenv("POSTLINE_SECRETS_DIR", str(secrets))
    assert load_settings(None).broker.url == "amqps://user:s3cret@rabbit:5671/"


def test_errors_name_each_bad_key_and_why(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[ingress]
max_recipients = 0
lisen = ["0.0.0.0:25"]
[delivery]
retry_schedule = "5 minutes"
""",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    text = str(caught.value)
    assert str(path) in text
    assert "ingress.max_recipients: Input should be greater than or equal to 1 (got 0)" in text
    assert "ingress.lisen: unknown key" in text
    assert "delivery.retry_schedule: '5 minutes' is not a duration" in text


def test_an_unknown_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="deliveri: unknown key"):
        load_settings(write(tmp_path, "[deliveri]\nsmtp_port = 25\n"))


def test_a_missing_or_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[broker\n"))


def test_cross_field_rules_are_enforced(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert and tls_key must be set together"):
        load_settings(write(tmp_path, '[ingress]\ntls_cert = "/x.pem"\n'))
    with pytest.raises(ConfigError, match="max_queue_lifetime is shorter"):
        load_settings(
            write(tmp_path, '[delivery]\nretry_schedule = "1h"\nmax_queue_lifetime = "10m"\n')
        )


def test_bad_namespace_and_url_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, '[broker]\nnamespace = "Has Spaces"\nurl = "http://x"\n'))
    assert "broker.namespace" in str(caught.value)
    assert "broker.url" in str(caught.value)


def test_broker_url_takes_one_url_or_a_list_of_cluster_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = load_settings(write(tmp_path, '[broker]\nurl = "amqp://u:p@rabbit:5672/"\n'))
    assert one.broker.url == "amqp://u:p@rabbit:5672/"
    assert one.broker.urls == ("amqp://u:p@rabbit:5672/",)
    nodes = '[broker]\nurl = ["amqp://u:p@rabbit-0:5672/", "amqps://u:p@rabbit-1:5671/"]\n'
    listed = load_settings(write(tmp_path, nodes))
    assert listed.broker.urls == ("amqp://u:p@rabbit-0:5672/", "amqps://u:p@rabbit-1:5671/")
    monkeypatch.setenv("POSTLINE_BROKER__URL", "amqp://a:5672/ amqp://b:5672/  amqp://c:5672/")
    assert load_settings(None).broker.urls == ("amqp://a:5672/", "amqp://b:5672/", "amqp://c:5672/")


def test_a_bad_or_empty_broker_url_list_is_refused(tmp_path: Path) -> None:
    for value in ('["amqp://a:5672/", "http://b/"]', "[]", '""'):
        with pytest.raises(ConfigError, match=r"broker\.url"):
            load_settings(write(tmp_path, f"[broker]\nurl = {value}\n"))


def test_quorum_size_defaults_to_three_and_must_be_positive(tmp_path: Path) -> None:
    assert load_settings(None).broker.quorum_size == 3
    with pytest.raises(ConfigError, match=r"broker\.quorum_size"):
        load_settings(write(tmp_path, "[broker]\nquorum_size = 0\n"))
