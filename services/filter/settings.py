"""The ``[filter]`` section: which filters run, in which order, for how long."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postline.values import Duration, HostPort, Listen


class FilterSettings(BaseModel):
    """After-queue filter chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: list[str] = Field(
        default_factory=lambda: ["headers"],
        description="Filter names, run in this order: built-ins (headers) or "
        "'package.module:factory' for a custom filter.",
    )
    concurrency: int = Field(default=16, ge=1, le=1000, description="Messages in flight.")
    timeout: Duration = Field(
        default=30.0,
        description="Longest one filter may take on one message; past it the message is "
        "requeued (and parked after [broker] delivery_limit tries).",
    )
    hostname: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$",
        description="This relay's name in Received and Message-ID fields. "
        "Default: [ingress] hostname (itself the machine's FQDN by default).",
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9102), description="/metrics, /healthz, /readyz address."
    )

    @field_validator("chain")
    @classmethod
    def _known_filters(cls, chain: list[str]) -> list[str]:
        from postline.filter.registry import resolve  # registry imports the filter API

        seen: set[str] = set()
        for name in chain:
            if name in seen:
                raise ValueError(f"filter {name!r} is listed twice")
            seen.add(name)
            resolve(name)
        return chain
