"""The whole configuration (every section) and what the root derives from it.

``Settings`` is the model of the configuration file: ``[broker]``, ``[relay]``,
``[ingress]``, ``[filter]``, ``[delivery]``, ``[audit]`` and ``[log]``.
``load_settings`` reads it (``postline.settings.load``: file, environment,
secret files); ``topology_for`` builds the RabbitMQ topology from ``[broker]``
and ``[delivery] retry_schedule`` (the tier queues); ``context_for`` is what
each service gets besides its own section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from postline.audit.settings import AuditSettings
from postline.context import ServiceContext
from postline.delivery.settings import DeliverySettings
from postline.filter.settings import FilterSettings
from postline.ingress.settings import IngressSettings
from postline.settings import BrokerSettings, ConfigBase, LogSettings, RelaySettings, load
from postline.topology import Topology, build_topology


class Settings(ConfigBase):
    """Every section of the Postline configuration file."""

    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    filter: FilterSettings = Field(default_factory=FilterSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    log: LogSettings = Field(default_factory=LogSettings)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """The process's settings from ``path`` (or ``$POSTLINE_CONFIG``) and the environment."""
    return load(Settings, path, **overrides)


def topology_for(settings: Settings) -> Topology:
    """The topology every service of one deployment declares."""
    return build_topology(
        settings.broker.namespace,
        settings.delivery.retry_schedule,
        delivery_limit=settings.broker.delivery_limit,
        max_queue_length=settings.broker.max_queue_length,
        quorum_size=settings.broker.quorum_size,
    )


def context_for(settings: Settings) -> ServiceContext:
    """What every service of ``settings`` is given besides its own section."""
    return ServiceContext(settings.broker, topology_for(settings), settings.relay.hostname)
