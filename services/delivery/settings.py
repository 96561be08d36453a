"""The ``[delivery]`` section: MX resolution, outbound SMTP, retries."""

from __future__ import annotations

import socket

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from postline.values import Duration, Hop, HostPort, Listen, Nameserver, RetrySchedule


class DeliverySettings(BaseModel):
    """Outbound delivery engine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    helo_name: str = Field(default_factory=socket.getfqdn, min_length=1, description="EHLO name.")
    dns_nameservers: list[Nameserver] = Field(
        default_factory=list, description="'host' or 'host:port'; empty: the system resolver."
    )
    smtp_port: int = Field(default=25, ge=1, le=65535, description="Port of remote MX hosts.")
    retry_schedule: RetrySchedule = Field(
        default=(60.0, 300.0, 300.0, 1800.0, 1800.0, *([7200.0] * 8)),
        description="Waits before each retry, Haraka style: '1m,5m*2,30m*2,2h*8'.",
    )
    max_queue_lifetime: Duration = Field(
        default=5 * 86400.0, description="Give up (expire) this long after the first attempt."
    )
    smarthost: Hop | None = Field(
        default=None, description="Send everything via '[host]:port' instead of MX."
    )
    routes: dict[str, Hop] = Field(
        default_factory=dict, description="Per-domain next hop, like Postfix transport_maps."
    )
    concurrency: int = Field(default=32, ge=1, le=10_000, description="Messages in flight.")
    deny_private_destinations: bool = Field(
        default=True, description="Refuse MX targets on loopback, link-local or private networks."
    )
    connect_timeout: Duration = Field(default=30.0, description="TCP connect timeout per host.")
    command_timeout: Duration = Field(default=300.0, description="Per-reply read timeout.")
    attempt_timeout: Duration = Field(
        default=600.0, description="Wall-clock cap on one delivery session."
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9103), description="/metrics, /healthz, /readyz address."
    )

    @field_validator("routes")
    @classmethod
    def _lower_domains(cls, routes: dict[str, object]) -> dict[str, object]:
        return {domain.lower().rstrip("."): hop for domain, hop in routes.items()}

    @model_validator(mode="after")
    def _lifetime_covers_first_retry(self) -> DeliverySettings:
        if self.max_queue_lifetime < self.retry_schedule[0]:
            raise ValueError("max_queue_lifetime is shorter than the first retry delay")
        return self
