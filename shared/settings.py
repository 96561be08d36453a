"""Configuration machinery and the sections every service shares.

Sources, strongest first: ``POSTLINE_<SECTION>__<KEY>`` environment variables,
secret files (``POSTLINE_SECRETS_DIR``, one file per key named
``<section>__<key>``, as a Kubernetes Secret mount provides), then the TOML file
given by ``--config`` or ``POSTLINE_CONFIG``, then the defaults.

``ConfigBase`` is a settings model that reads those sources; the whole
product's model (every section) is the composition root's
(``postline.app.settings``), so this module knows no service. ``load`` either
returns a complete, valid model or raises ``ConfigError`` whose text names
every bad key and why. Services receive their section and a
``postline.context.ServiceContext``; nothing reads the environment later.

The shared sections: ``[broker]`` (RabbitMQ), ``[relay]`` (the relay's one
identity, which every service uses unless its own section overrides it) and
``[log]``.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from postline.values import Duration

CONFIG_ENV = "POSTLINE_CONFIG"
SECRETS_ENV = "POSTLINE_SECRETS_DIR"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key(s) and why."""


_AMQP_URL = re.compile(r"^amqps?://\S+$")


def _broker_urls(value: object) -> object:
    """One URL, a list of them, or several separated by spaces -> one space-separated string.

    A space never occurs in a URL, so the canonical form stays a plain ``str``
    (what every single-node tool expects) while ``BrokerSettings.urls`` splits it.
    """
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError("expected an AMQP URL or a non-empty list of them")
    for item in items:
        if not isinstance(item, str) or not _AMQP_URL.match(item):
            raise ValueError(f"{item!r} is not an amqp:// or amqps:// URL")
    return " ".join(items)


BrokerUrls = Annotated[str, BeforeValidator(_broker_urls)]
"""``[broker] url``: validated, canonical space-separated form (see ``_broker_urls``)."""


class BrokerSettings(BaseModel):
    """``[broker]``: how to reach RabbitMQ and how the topology is shaped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: BrokerUrls = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description=(
            "AMQP URL of RabbitMQ, or several: one per cluster node (a TOML list, or URLs"
            " separated by spaces in an environment variable or secret file), or one"
            " load-balanced name. Each service connects to one of them (in random order) and"
            " moves to another when that node fails."
        ),
    )
    namespace: str = Field(
        default="postline",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
        description="Prefix of every exchange and queue name.",
    )
    publish_timeout: Duration = Field(
        default=120.0,
        gt=0,
        description=(
            "Longest wait for the broker's confirm of a sent message before ingress answers"
            " 451 (outcome unknown); workers wait on, up to 5 times as long. With no connection"
            " to send on, 451 (not queued) comes after 10s at most. 2m: longer than the stalls"
            " a broker recovers from by itself (a 35s stall must still end in 250), well under"
            " the 10 minutes RFC 5321 (4.5.3.2.6) has clients wait for the end-of-data reply,"
            " so they hear our answer rather than time out."
        ),
    )
    delivery_limit: int = Field(
        default=5, ge=1, le=1000, description="Deliveries of one message before it is parked."
    )
    max_queue_length: int = Field(
        default=1_000_000, ge=1, description="Messages a work queue holds before refusing more."
    )
    watchdog_timeout: Duration = Field(
        default=120.0, description="Exit non-zero after this long without a live consumer."
    )
    quorum_size: int = Field(
        default=3,
        ge=1,
        le=9,
        description=(
            "Initial number of replicas of each quorum queue (x-quorum-initial-group-size);"
            " RabbitMQ caps it at the cluster's size. Only used when a queue is created: an"
            " existing queue keeps its members (grow it with rabbitmq-queues grow)."
        ),
    )

    @property
    def urls(self) -> tuple[str, ...]:
        """Every broker URL, in the order configured."""
        return tuple(self.url.split())


class RelaySettings(BaseModel):
    """``[relay]``: the relay's one identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hostname: str = Field(
        default_factory=socket.getfqdn,
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$",
        description="This relay's name: ingress's banner and EHLO, filter's Received and "
        "Message-ID, delivery's HELO, DSNs' Reporting-MTA, unless a service section "
        "overrides it. Default: the machine's FQDN.",
    )


class LogSettings(BaseModel):
    """``[log]``: structured logs on standard output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level written."
    )


class ConfigBase(BaseSettings):
    """A configuration model read from the sources in the module docstring."""

    model_config = SettingsConfigDict(
        env_prefix="POSTLINE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("secrets_dir"):
            sources.append(NestedSecretsSettingsSource(file_secret_settings))
        toml_file = settings_cls.model_config.get("toml_file")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


Model = TypeVar("Model", bound=ConfigBase)


def load(model: type[Model], path: str | Path | None = None, **overrides: Any) -> Model:
    """``model`` from ``path`` (or ``$POSTLINE_CONFIG``), the environment and secret files.

    Raises ``ConfigError`` for a missing or unparsable file and for invalid values.
    """
    path = path if path is not None else os.environ.get(CONFIG_ENV)
    toml_file = Path(path) if path else None
    if toml_file is not None:
        _check_toml(toml_file)
    secrets_dir = os.environ.get(SECRETS_ENV) or None
    if secrets_dir is not None and not Path(secrets_dir).is_dir():
        raise ConfigError(f"{SECRETS_ENV}={secrets_dir}: not a directory")

    secrets = SettingsConfigDict(
        secrets_dir=secrets_dir, secrets_nested_delimiter="__", secrets_prefix=""
    )

    class _FileSettings(model):  # type: ignore[valid-type,misc]
        model_config = SettingsConfigDict(toml_file=toml_file, **(secrets if secrets_dir else {}))

    try:
        loaded = _FileSettings(**overrides)
    except ValidationError as error:
        raise ConfigError(describe_errors(error, toml_file)) from None
    fields = {name: getattr(loaded, name) for name in model.model_fields}
    return cast(Model, model.model_construct(**fields))


def _check_toml(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def describe_errors(error: ValidationError, source: Path | None) -> str:
    """One line per bad key: ``ingress.max_recipients: Input should be ... (got 0)``."""
    where = f" in {source}" if source else ""
    lines = [f"invalid configuration{where}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        got = item.get("input")
        shown = "" if item["type"] in ("extra_forbidden", "missing") else f" (got {got!r})"
        if isinstance(got, dict):
            shown = ""
        lines.append(f"  {key}: {message}{shown}")
    return "\n".join(lines)
