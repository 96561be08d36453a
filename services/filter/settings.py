"""The ``[filter]`` section: which filters run, in which order, for how long, on how much."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from postline.filter.message import DEFAULT_LIMITS, HeaderLimits
from postline.values import Duration, HostPort, Listen, Size


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
        description="Longest the filter may spend on one message: parsing it, every filter "
        "of the chain and re-assembling it, together; past it the message is requeued (and "
        "parked after [broker] delivery_limit tries).",
    )
    max_header_size: Size = Field(
        default=DEFAULT_LIMITS.max_size,
        ge=1,
        description="Largest header section (bytes, without the empty line) the filter "
        "parses; a message with a larger one is rejected (554 5.6.0). Keep it at least "
        "[ingress] max_header_size.",
    )
    max_header_lines: int = Field(
        default=DEFAULT_LIMITS.max_lines,
        ge=1,
        le=10_000_000,
        description="Most header lines (continuation lines included) the filter parses; a "
        "message with more is rejected (554 5.6.0). Keep it at least [ingress] "
        "max_header_lines.",
    )
    hostname: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$",
        description="This relay's name in Received and Message-ID fields. "
        "Default: [relay] hostname.",
    )
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9102), description="/metrics, /healthz, /readyz address."
    )

    @property
    def header_limits(self) -> HeaderLimits:
        return HeaderLimits(self.max_header_size, self.max_header_lines)

    @field_validator("chain")
    @classmethod
    def _listed_once(cls, chain: list[str]) -> list[str]:
        """Names are checked here; whether they resolve, by ``registry.check_chain``
        (when the filter service starts, and by ``postline config check``), so no
        other service imports filter modules when it reads the configuration."""
        seen: set[str] = set()
        for name in chain:
            if name in seen:
                raise ValueError(f"filter {name!r} is listed twice")
            seen.add(name)
        return chain
