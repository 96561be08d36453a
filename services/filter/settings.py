"""The ``[filter]`` section: which filters run, in which order."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from postline.values import Duration, HostPort, Listen


class FilterSettings(BaseModel):
    """After-queue filter chain."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: list[str] = Field(
        default_factory=lambda: ["headers"], description="Filter names, run in this order."
    )
    concurrency: int = Field(default=16, ge=1, le=1000, description="Messages in flight.")
    shutdown_grace: Duration = Field(
        default=30.0, description="Time in-flight messages get to finish on SIGTERM."
    )
    metrics_listen: Listen | None = Field(
        default=HostPort("0.0.0.0", 9102), description="/metrics, /healthz, /readyz address."
    )
